//! The player page in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! started here on a free loopback port) against `qotd local` on an ephemeral port.
//!
//! One player signs in through the dev issuer (authorization code + PKCE), registers, answers
//! all five questions, sees the score and every explanation, copies the share text, finds
//! themself on the daily board, and after a reload sees the result instead of the questions.
//! A second browser session, as another player, sees both on the board.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test prints
//! `skipped: chromium/chromedriver not installed` and passes, except with `CI=true`, where it
//! fails. `QOTD_SCREENSHOT_DIR=<dir>` saves `player-phone.png` and `player-desktop.png` there
//! (the README's screenshots come from `QOTD_SCREENSHOT_DIR=docs`).

mod support;

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::app::{correct_answers, spawn_local_with, today_utc};

const WAIT: Duration = Duration::from_secs(30);

fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .chain([
                PathBuf::from("/usr/bin"),
                PathBuf::from("/usr/lib/chromium"),
            ])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Chromium and chromedriver, or `None` (after printing why) when the test must skip.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_tool(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find_tool(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "chromium/chromedriver not installed, and CI=true: .ci/run must install them \
                 (apt-get install -y chromium chromium-driver)"
            );
            let _ = writeln!(
                std::io::stderr(),
                "skipped: chromium/chromedriver not installed"
            );
            None
        }
    }
}

/// A running chromedriver, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(chromedriver: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}/"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(r) = http.get(format!("{}status", driver.url)).send().await
            && r.status().is_success()
        {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Chrome DevTools command through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp(&'static str, Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "cmd": self.0, "params": self.1 }).to_string()),
        )
    }
}

/// One browser session with its own fresh profile.
struct Browser {
    client: Client,
    width: u32,
    _profile: tempfile::TempDir,
}

async fn open_browser(driver: &Driver, chromium: &Path, width: u32, phone: bool) -> Browser {
    let profile = tempfile::tempdir().unwrap();
    let args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        format!("--user-data-dir={}", profile.path().display()),
        format!("--window-size={},900", width.max(500)),
    ];
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let client = ClientBuilder::rustls()
        .expect("rustls connector")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("start a Chromium session");
    if phone {
        // Headless windows are at least 500 px wide: emulate the phone's viewport instead.
        cdp(
            &client,
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
        )
        .await;
    }
    Browser {
        client,
        width,
        _profile: profile,
    }
}

async fn cdp(client: &Client, cmd: &'static str, params: Value) -> Value {
    client
        .issue_cmd(Cdp(cmd, params))
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

impl Browser {
    /// Waits until an element matching `css` is displayed.
    async fn visible(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && el.is_displayed().await.unwrap_or(false)
            {
                return el;
            }
            if Instant::now() > deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let error = self.text("[data-testid=\"error\"]").await;
                panic!("not visible within {WAIT:?}: {css} (at {url:?}; error region: {error:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn displayed(&self, css: &str) -> bool {
        match self.client.find(Locator::Css(css)).await {
            Ok(el) => el.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn click(&self, css: &str) {
        self.visible(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Waits until `check` on the texts of all elements matching `css` holds.
    async fn wait_texts(
        &self,
        css: &str,
        what: &str,
        check: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut texts = Vec::new();
            for el in self
                .client
                .find_all(Locator::Css(css))
                .await
                .unwrap_or_default()
            {
                texts.push(el.text().await.unwrap_or_default());
            }
            if check(&texts) {
                return texts;
            }
            assert!(Instant::now() < deadline, "{what}: {css} gave {texts:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs in through the dev issuer's form and registers `name`.
    async fn sign_in_and_register(&self, base: &str, user: &str, name: &str) {
        self.client.goto(&format!("{base}/")).await.unwrap();
        let url = self.client.current_url().await.unwrap();
        assert_eq!(url.path(), "/play/", "/ leads to the page");
        self.click("[data-testid=\"sign-in\"]").await;
        let field = self.visible("#user").await;
        field.send_keys(user).await.unwrap();
        self.click("#dev-sign-in").await;
        let display = self.visible("[data-testid=\"display-name\"]").await;
        let url = self.client.current_url().await.unwrap();
        assert_eq!(
            (url.path(), url.query()),
            ("/play/", None),
            "the code and state leave the address bar"
        );
        display.send_keys(name).await.unwrap();
        self.click("[data-testid=\"register\"]").await;
        self.visible("[data-testid=\"quiz-view\"]").await;
        let who = self.text("[data-testid=\"who\"]").await;
        assert!(who.contains(name), "who: {who:?}");
    }

    /// Chooses `answers` and submits; waits for the result.
    async fn play(&self, answers: &[i64]) {
        assert_eq!(answers.len(), 5);
        for (i, c) in answers.iter().enumerate() {
            self.click(&format!("[data-testid=\"q{i}-c{c}\"]")).await;
        }
        self.click("[data-testid=\"submit\"]").await;
        self.visible("[data-testid=\"result-view\"]").await;
    }

    /// A full-page PNG at the browser's width.
    async fn screenshot(&self, path: &Path) {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .unwrap()
            .as_f64()
            .unwrap_or(900.0);
        let shot = cdp(
            &self.client,
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": self.width, "height": height, "scale": 1 },
            }),
        )
        .await;
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_players_play_todays_quiz_in_chromium() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let app = spawn_local_with(&[("QOTD_LOCAL_TIMERS", "false")]).await;
    let driver = start_driver(&chromedriver).await;
    let shots = std::env::var_os("QOTD_SCREENSHOT_DIR").map(PathBuf::from);

    // Player one, on a phone-sized viewport.
    let alice = open_browser(&driver, &chromium, 390, true).await;
    cdp(
        &alice.client,
        "Browser.grantPermissions",
        json!({ "origin": app.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"] }),
    )
    .await;
    alice
        .sign_in_and_register(&app.base, "alice", "Alice")
        .await;
    let correct = correct_answers(&app, &today_utc());
    let mut answers = correct.clone();
    answers[4] = (answers[4] + 1) % 4;
    alice.play(&answers).await;
    assert_eq!(
        alice.text("[data-testid=\"score-detail\"]").await,
        "4 of 5 correct"
    );
    let score = alice.text("[data-testid=\"score\"]").await;
    assert!(score.ends_with("points"), "score: {score:?}");
    for i in 0..5 {
        let explanation = alice
            .text(&format!("[data-testid=\"explanation-{i}\"]"))
            .await;
        assert!(!explanation.trim().is_empty(), "explanation {i} is shown");
    }
    let verdict = alice.text("[data-testid=\"verdict-4\"]").await;
    assert!(!verdict.is_empty(), "verdict of the wrong answer");

    // Share: the spoiler-free text goes to the clipboard.
    alice
        .wait_texts("[data-testid=\"share-preview\"]", "share preview", |t| {
            t.first().is_some_and(|s| !s.is_empty())
        })
        .await;
    alice.click("[data-testid=\"share\"]").await;
    let status = alice
        .wait_texts("[data-testid=\"share-status\"]", "share status", |t| {
            t.first().is_some_and(|s| !s.is_empty())
        })
        .await;
    assert!(status[0].starts_with("Copied!"), "share status: {status:?}");
    let copied = alice
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             navigator.clipboard.readText().then(done, (e) => done('error: ' + e))",
            vec![],
        )
        .await
        .unwrap();
    let preview = alice.text("[data-testid=\"share-preview\"]").await;
    let copied = copied.as_str().unwrap_or_default();
    assert!(
        !copied.starts_with("error:") && !copied.is_empty(),
        "clipboard: {copied:?}"
    );
    assert_eq!(
        Some(copied.trim()),
        preview.lines().next().map(str::trim),
        "the clipboard holds the share text shown"
    );
    for i in 0..5 {
        assert!(
            !copied.contains(
                &alice
                    .text(&format!("[data-testid=\"explanation-{i}\"]"))
                    .await
            )
        );
    }

    // The daily board, with Alice marked as the caller.
    alice
        .wait_texts(
            "[data-testid=\"board-row\"][data-me=\"true\"]",
            "Alice on the daily board",
            |t| t.len() == 1 && t[0].contains("Alice"),
        )
        .await;
    if let Some(dir) = &shots {
        std::fs::create_dir_all(dir).unwrap();
        alice.screenshot(&dir.join("player-phone.png")).await;
    }

    // Reload: the result, not the questions.
    alice.client.refresh().await.unwrap();
    alice.visible("[data-testid=\"result-view\"]").await;
    assert!(!alice.displayed("[data-testid=\"quiz-view\"]").await);
    assert_eq!(
        alice.text("[data-testid=\"score-detail\"]").await,
        "4 of 5 correct"
    );

    // Player two, in a separate desktop-sized session, sees both players.
    let bob = open_browser(&driver, &chromium, 1280, false).await;
    bob.sign_in_and_register(&app.base, "bob", "Bob").await;
    bob.play(&correct).await;
    assert_eq!(
        bob.text("[data-testid=\"score-detail\"]").await,
        "5 of 5 correct"
    );
    let rows = bob
        .wait_texts("[data-testid=\"board-row\"]", "both on the board", |t| {
            t.len() == 2
                && t.iter().any(|r| r.contains("Alice"))
                && t.iter().any(|r| r.contains("Bob"))
        })
        .await;
    let me = bob
        .text("[data-testid=\"board-row\"][data-me=\"true\"]")
        .await;
    assert!(
        me.contains("Bob"),
        "Bob's row is marked: {me:?} of {rows:?}"
    );
    assert!(
        rows[0].contains("Bob"),
        "5 of 5 ranks above 4 of 5: {rows:?}"
    );
    if let Some(dir) = &shots {
        bob.screenshot(&dir.join("player-desktop.png")).await;
    }

    alice.client.close().await.unwrap();
    bob.client.close().await.unwrap();
    drop(driver);
    eprintln!("browser test took {:?}", started.elapsed());
}
