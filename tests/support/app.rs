//! Test harness: spawns the real `qotd` binary (`local` or `serve`) on an ephemeral port with a
//! temporary data dir, and offers typed helpers so tests never build URLs or sleep blindly.
//! Logs are shown only when `TEST_LOG` is set.

use qotd::platform::auth::dev_issuer::DevIssuer;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_qotd");

/// A running `qotd` process and how to reach it.
pub struct TestApp {
    child: Child,
    /// Where HTTP API calls go (the local host for `local`, the handler for `serve`).
    pub base: String,
    /// The handler itself (for invocation-protocol calls).
    pub handler: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
    env: Vec<(String, String)>,
    /// For `serve`: from spawning the process to its first answer to `GET /` (the dev
    /// issuer's key is created beforehand, so this is the handler's own start-up).
    pub ready_in: Duration,
    /// What the process logged on stderr so far.
    pub logs: Logs,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Log lines the process wrote to stderr (at the `QOTD_LOG` level the test chose).
pub type Logs = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

fn forward_logs(reader: impl std::io::Read + Send + 'static) -> Logs {
    let logs = Logs::default();
    let keep = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if std::env::var_os("TEST_LOG").is_some() {
                eprintln!("[qotd] {line}");
            }
            let mut kept = keep.lock().unwrap();
            if kept.len() < 10_000 {
                kept.push(line);
            }
        }
    });
    logs
}

fn log_level() -> &'static str {
    if std::env::var_os("TEST_LOG").is_some() {
        "info"
    } else {
        "warn"
    }
}

/// Starts `qotd local` on 127.0.0.1:0 with a fresh data dir.
pub async fn spawn_local() -> TestApp {
    spawn_local_with(&[]).await
}

pub async fn spawn_local_with(env: &[(&str, &str)]) -> TestApp {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().to_owned();
    let mut app = start_local(&dir, env);
    app._temp = Some(temp);
    app.wait_ready().await;
    app
}

fn start_local(dir: &Path, env: &[(&str, &str)]) -> TestApp {
    let mut cmd = Command::new(BIN);
    cmd.args(["local", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("QOTD_LOG", log_level())
        // No timer fires on the wall clock behind a test's back; a test that needs a timer
        // invokes its function through the protocol (or passes QOTD_LOCAL_TIMERS=true).
        .env("QOTD_LOCAL_TIMERS", "false");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qotd local");
    let stdout = child.stdout.take().unwrap();
    let logs = forward_logs(child.stderr.take().unwrap());
    let mut lines = BufReader::new(stdout).lines();
    let mut base = None;
    let mut handler = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.strip_prefix("qotd local host listening on ") {
            let mut parts = rest.split_whitespace();
            base = parts.next().map(str::to_owned);
            handler = parts.nth(2).map(|h| h.trim_end_matches(',').to_owned());
            break;
        }
    }
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if std::env::var_os("TEST_LOG").is_some() {
                eprintln!("[qotd] {line}");
            }
        }
    });
    let base = base.expect("qotd local printed its address");
    TestApp {
        child,
        base,
        handler: handler.expect("qotd local printed the handler address"),
        data_dir: dir.to_owned(),
        _temp: None,
        http: reqwest::Client::new(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ready_in: Duration::ZERO,
        logs,
    }
}

/// Starts `qotd serve` (custom-handler mode) with the dev issuer on a free port.
pub async fn spawn_serve() -> TestApp {
    spawn_serve_with(&[]).await
}

/// Like `spawn_serve`, with extra environment variables.
pub async fn spawn_serve_with(env: &[(&str, &str)]) -> TestApp {
    let temp = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The dev issuer's signing key, made here so the process start-up measured below is the
    // handler's own (generating an RSA key in a debug build takes seconds on a busy machine).
    DevIssuer::load_or_create(temp.path()).expect("dev issuer key");
    let mut cmd = Command::new(BIN);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let spawned = Instant::now();
    let mut child = cmd
        .arg("serve")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("QOTD_DEV_ISSUER", "true")
        .env("QOTD_DATA_DIR", temp.path())
        .env("QOTD_LOG", log_level())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qotd serve");
    forward_logs(child.stdout.take().unwrap());
    let logs = forward_logs(child.stderr.take().unwrap());
    let url = format!("http://127.0.0.1:{port}");
    let app = TestApp {
        child,
        base: url.clone(),
        handler: url,
        data_dir: temp.path().to_owned(),
        _temp: Some(temp),
        http: reqwest::Client::new(),
        env: Vec::new(),
        ready_in: Duration::ZERO,
        logs,
    };
    app.wait_ready().await;
    let mut app = app;
    app.ready_in = spawned.elapsed();
    app
}

impl TestApp {
    /// Polls `GET /` on the handler, as the Functions host does, until it answers.
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self
                .http
                .get(format!("{}/", self.handler))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("qotd did not become ready");
    }

    /// Kills the process without warning (SIGKILL), like a crash.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Kills the process and starts it again on the same data dir (a new port).
    pub async fn restart(mut self) -> TestApp {
        let env: Vec<(String, String)> = std::mem::take(&mut self.env);
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.restart_with(&env_refs).await
    }

    /// Like `restart`, with a different set of extra environment variables.
    pub async fn restart_with(mut self, env_refs: &[(&str, &str)]) -> TestApp {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill();
        }
        let temp = self._temp.take();
        let mut next = start_local(&self.data_dir, env_refs);
        next._temp = temp;
        next.wait_ready().await;
        next
    }

    pub fn token(&self, user: &str, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        DevIssuer::load_or_create(&self.data_dir)
            .unwrap()
            .mint(user, Some(user), &roles, Duration::from_secs(3600))
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with an optional bearer token and JSON body; returns status and JSON.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    /// Registers `user` and returns their token.
    pub async fn register(&self, user: &str) -> String {
        let token = self.token(user, &[]);
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/users/me",
                Some(&token),
                Some(json!({ "displayName": user })),
            )
            .await;
        assert!(
            status == 201 || status == 200,
            "register {user}: {status} {body}"
        );
        token
    }

    pub async fn today(&self, token: &str) -> Value {
        let (status, body) = self.get("/api/quizzes/today", token).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn submit(&self, token: &str, date: &str, answers: &[i64]) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/api/quizzes/{date}/attempts"),
            Some(token),
            Some(json!({ "answers": answers })),
        )
        .await
    }

    /// POSTs an invocation payload to `/{function}` on the handler; returns status, content type, body.
    pub async fn invoke(&self, function: &str, payload: &Value) -> (u16, String, Value) {
        let res = self
            .http
            .post(format!("{}/{function}", self.handler))
            .header("content-type", "application/json; charset=utf-8")
            .header(
                "X-Azure-Functions-InvocationId",
                uuid::Uuid::new_v4().to_string(),
            )
            .body(payload.to_string())
            .send()
            .await
            .expect("invoke");
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, ct, body)
    }

    /// A direct read-only look at the database (for "nothing stored" checks).
    pub fn db_count(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open_with_flags(
            self.data_dir.join("qotd.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The correct answers of today's quiz, read from the database (tests only).
pub fn correct_answers(app: &TestApp, date: &str) -> Vec<i64> {
    let conn = rusqlite::Connection::open_with_flags(
        app.data_dir.join("qotd.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT correct_choice FROM quiz_questions WHERE quiz_date = ?1 ORDER BY position")
        .unwrap();
    stmt.query_map([date], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

pub fn today_utc() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}
