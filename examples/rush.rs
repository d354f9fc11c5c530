//! The 00:00 UTC rush, replayed: `cargo run --release --example rush -- --players 10000000`.
//!
//! The model (docs/scale.md): 40 % of the daily players play in the first hour after 00:00 UTC,
//! and the peak minute carries 10× that hour's average rate. Minute `m` of the hour carries
//! `w(m) = a + b·0.8^m` times the hour's average, with `a + b = 10` (the peak minute) and
//! `Σ w(m) = 60` over the hour (so the hour holds exactly its 40 %).
//!
//! The replay runs the real code paths: this binary re-executes itself as `qotd serve`
//! (SQLite in a temporary directory, dev issuer, the in-process local bus delivering batches
//! to `LeaderboardOnAttemptEvaluated`), registers the players it needs over real HTTP on
//! loopback, then offers attempts open-loop (paced by the clock, not by the answers) at the
//! model's rate divided by `--scale`:
//!
//! 1. `--peak-secs` seconds at the peak minute's rate (`w(0) = 10×` the hour's average);
//! 2. `--next-secs` seconds at the next minute's rate (`w(1)`);
//! 3. no new attempts; it waits (at most 60 s) until every accepted attempt is on the board.
//!
//! Every second it prints what was offered, accepted (201), applied to the leaderboard
//! (inbox rows of the consumer), and how many outbox rows are pending: the queues are the
//! gaps between those columns. At the end it prints the time from each attempt's 201 (as the
//! client saw it) to its inbox row on the board (`processed_at`, written in the transaction
//! that applies it), p50/p99/max, with the load average. Everything is bounded in time.
//!
//! Options: `--players N` (default 10,000,000), `--scale F` (default: the peak runs at
//! `--rate` attempts/s), `--rate R` (default 600), `--peak-secs S` (20), `--next-secs S` (10),
//! `--inflight N` (256: most attempts in flight; beyond it an offer is refused client-side and
//! counted as "shed").

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use qotd::platform::auth::dev_issuer::DevIssuer;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

const SERVE_ENV: &str = "QOTD_RUSH_SERVE";
use qotd::leaderboard::consumers::ATTEMPT_EVALUATED as ATTEMPTS_CONSUMER;

struct Args {
    players: f64,
    scale: Option<f64>,
    rate: f64,
    peak_secs: u64,
    next_secs: u64,
    inflight: usize,
}

fn args() -> Result<Args> {
    let mut a = Args {
        players: 10_000_000.0,
        scale: None,
        rate: 600.0,
        peak_secs: 20,
        next_secs: 10,
        inflight: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| anyhow!("{k} needs a value"));
        match k.as_str() {
            "--players" => a.players = v()?.parse()?,
            "--scale" => a.scale = Some(v()?.parse()?),
            "--rate" => a.rate = v()?.parse()?,
            "--peak-secs" => a.peak_secs = v()?.parse()?,
            "--next-secs" => a.next_secs = v()?.parse()?,
            "--inflight" => a.inflight = v()?.parse()?,
            other => bail!("unknown option {other} (see the header of examples/rush.rs)"),
        }
    }
    if a.players < 1.0 || a.rate <= 0.0 || a.scale.is_some_and(|s| s <= 0.0) {
        bail!("--players, --rate and --scale must be positive");
    }
    Ok(a)
}

/// The arrival model: minute weights `w(m) = a + b·r^m` of the first hour.
struct Model {
    first_hour: f64,
    avg_per_s: f64,
    a: f64,
    b: f64,
    r: f64,
}

impl Model {
    fn new(players: f64) -> Self {
        let r: f64 = 0.8;
        let geo = (1.0 - r.powi(60)) / (1.0 - r);
        // a + b = 10 and 60a + b·geo = 60.
        let b = (600.0 - 60.0) / (60.0 - geo);
        let a = 10.0 - b;
        let first_hour = 0.4 * players;
        Self {
            first_hour,
            avg_per_s: first_hour / 3600.0,
            a,
            b,
            r,
        }
    }
    fn weight(&self, minute: i32) -> f64 {
        self.a + self.b * self.r.powi(minute)
    }
    fn rate(&self, minute: i32) -> f64 {
        self.avg_per_s * self.weight(minute)
    }
}

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> Result<()> {
    if std::env::var_os(SERVE_ENV).is_some() {
        // Re-executed as the server: the real `qotd` command line.
        std::process::exit(match qotd::cli::main() {
            code if code == std::process::ExitCode::SUCCESS => 0,
            _ => 1,
        });
    }
    let args = args()?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let model = Model::new(args.players);
    let peak = model.rate(0);
    let scale = args.scale.unwrap_or(peak / args.rate).max(1e-9);
    let (rate_peak, rate_next) = (peak / scale, model.rate(1) / scale);
    let needed = (rate_peak * args.peak_secs as f64 + rate_next * args.next_secs as f64).ceil()
        as usize
        + 16;
    println!(
        "qotd rush simulation (load average at start: {})",
        loadavg()
    );
    println!(
        "model: {:.0} daily players, {:.0} in the first hour (40 %)",
        args.players, model.first_hour
    );
    println!(
        "       hour average {:.0} attempts/s; peak minute 10x = {:.0}/s ({:.0} attempts); next minute {:.0}/s",
        model.avg_per_s,
        peak,
        peak * 60.0,
        model.rate(1)
    );
    println!(
        "replay: scale 1/{scale:.1}: peak {rate_peak:.0}/s for {} s, then {rate_next:.0}/s for {} s ({needed} players registered first)",
        args.peak_secs, args.next_secs
    );

    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let me = std::env::current_exe()?;
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let _server = Guard(
        Command::new(&me)
            .arg("serve")
            .env(SERVE_ENV, "1")
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("QOTD_DEV_ISSUER", "true")
            .env("QOTD_DATA_DIR", dir.path())
            .env("QOTD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start the server")?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.inflight)
        .build()?;
    let started = Instant::now();
    loop {
        if http.get(format!("{base}/")).send().await.is_ok() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "the server did not start; see {}",
                dir.path().join("server.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let db_path = dir.path().join("qotd.db");

    // Players: tokens minted in process (the dev issuer's key file the server reads).
    let issuer = DevIssuer::load_or_create(dir.path())?;
    let t = Instant::now();
    let tokens: Vec<String> = {
        let users: Vec<String> = (0..needed).map(|i| format!("rush-{i:07}")).collect();
        let threads = 2;
        let chunk = users.len().div_ceil(threads);
        std::thread::scope(|s| {
            let hs: Vec<_> = users
                .chunks(chunk)
                .map(|part| {
                    let issuer = &issuer;
                    s.spawn(move || {
                        part.iter()
                            .map(|u| issuer.mint(u, Some(u), &[], Duration::from_secs(3600)))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut all = Vec::new();
            for h in hs {
                all.extend(h.join().map_err(|_| anyhow!("minting panicked"))??);
            }
            Ok::<_, anyhow::Error>(all)
        })?
    };
    let tokens = Arc::new(tokens);
    let registered = AtomicU64::new(0);
    futures_util::stream::iter(0..needed)
        .for_each_concurrent(64, |i| {
            let (http, base, tokens, registered) = (&http, &base, tokens.clone(), &registered);
            async move {
                let res = http
                    .post(format!("{base}/api/users/me"))
                    .bearer_auth(&tokens[i])
                    .header("content-type", "application/json")
                    .body(format!("{{\"displayName\":\"Rush {i}\"}}"))
                    .send()
                    .await;
                if res.is_ok_and(|r| r.status().is_success()) {
                    registered.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    let registered = registered.load(Ordering::Relaxed) as usize;
    println!(
        "setup: {registered} players registered in {:.1} s (tokens included)",
        t.elapsed().as_secs_f64()
    );
    if registered < needed {
        bail!("only {registered} of {needed} registrations succeeded");
    }
    // Today's quiz exists (generated on start) and the registrations are on the board first.
    let today: serde_json::Value = http
        .get(format!("{base}/api/quizzes/today"))
        .bearer_auth(&tokens[0])
        .send()
        .await?
        .json()
        .await?;
    let date = today["date"]
        .as_str()
        .ok_or_else(|| anyhow!("no quiz today: {today}"))?
        .to_owned();
    let probe = rusqlite::Connection::open_with_flags(
        &db_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let count = |sql: &str| -> i64 { probe.query_row(sql, [], |r| r.get(0)).unwrap_or(-1) };
    let pending_sql = "SELECT COUNT(*) FROM platform_outbox WHERE sent_at IS NULL";
    let applied_sql =
        format!("SELECT COUNT(*) FROM platform_inbox WHERE consumer = '{ATTEMPTS_CONSUMER}'");
    let drain = Instant::now();
    while count(pending_sql) != 0 && drain.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The replay: open-loop offers, at most `inflight` in flight.
    let offered = Arc::new(AtomicU64::new(0));
    let shed = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let slots = Arc::new(tokio::sync::Semaphore::new(args.inflight));
    let done_at: Arc<std::sync::Mutex<Vec<(usize, SystemTime, f64)>>> = Arc::default();
    let phases = [(rate_peak, args.peak_secs), (rate_next, args.next_secs)];
    let offer_secs: u64 = phases.iter().map(|p| p.1).sum();
    let t0 = Instant::now();
    let driver = {
        let (http, base, tokens, date) = (http.clone(), base.clone(), tokens.clone(), date.clone());
        let (offered, shed, accepted, failed, slots, done_at) = (
            offered.clone(),
            shed.clone(),
            accepted.clone(),
            failed.clone(),
            slots.clone(),
            done_at.clone(),
        );
        tokio::spawn(async move {
            let mut next_user = 0usize;
            let mut phase_start = Instant::now();
            for (rate, secs) in phases {
                let interval = Duration::from_secs_f64(1.0 / rate);
                let end = phase_start + Duration::from_secs(secs);
                let mut due = phase_start;
                while due < end && next_user < tokens.len() {
                    tokio::time::sleep_until(due.into()).await;
                    due += interval;
                    offered.fetch_add(1, Ordering::Relaxed);
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        shed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let i = next_user;
                    next_user += 1;
                    let answers: Vec<String> = (0..5).map(|q| ((i + q) % 4).to_string()).collect();
                    let (http, base, tokens, date, accepted, failed, done_at) = (
                        http.clone(),
                        base.clone(),
                        tokens.clone(),
                        date.clone(),
                        accepted.clone(),
                        failed.clone(),
                        done_at.clone(),
                    );
                    tokio::spawn(async move {
                        let sent = Instant::now();
                        let res = http
                            .post(format!("{base}/api/quizzes/{date}/attempts"))
                            .bearer_auth(&tokens[i])
                            .header("content-type", "application/json")
                            .body(format!("{{\"answers\":[{}]}}", answers.join(",")))
                            .timeout(Duration::from_secs(30))
                            .send()
                            .await;
                        match res {
                            Ok(r) if r.status().as_u16() == 201 => {
                                let at = SystemTime::now();
                                let _ = r.bytes().await;
                                accepted.fetch_add(1, Ordering::Relaxed);
                                done_at.lock().unwrap().push((
                                    i,
                                    at,
                                    sent.elapsed().as_secs_f64() * 1000.0,
                                ));
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        drop(permit);
                    });
                }
                phase_start = end;
            }
        })
    };

    println!();
    println!(
        "   t   offered/s  accepted/s  applied/s  outbox pending  accepted-not-applied  shed  failed"
    );
    let (mut last_off, mut last_acc, mut last_app) = (0u64, 0u64, count(&applied_sql));
    let applied0 = last_app;
    let mut max_pending = 0;
    let mut max_gap = 0;
    let deadline = Duration::from_secs(offer_secs + 60);
    let mut tick =
        tokio::time::interval_at((t0 + Duration::from_secs(1)).into(), Duration::from_secs(1));
    loop {
        tick.tick().await;
        let (off, acc, app) = (
            offered.load(Ordering::Relaxed),
            accepted.load(Ordering::Relaxed),
            count(&applied_sql),
        );
        let pending = count(pending_sql);
        let gap = acc as i64 - (app - applied0);
        max_pending = max_pending.max(pending);
        max_gap = max_gap.max(gap);
        println!(
            "{:>4}  {:>10}  {:>10}  {:>9}  {:>14}  {:>20}  {:>4}  {:>6}",
            t0.elapsed().as_secs(),
            off - last_off,
            acc - last_acc,
            app - last_app,
            pending,
            gap,
            shed.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed)
        );
        (last_off, last_acc, last_app) = (off, acc, app);
        let offering = t0.elapsed() < Duration::from_secs(offer_secs) || !driver.is_finished();
        if (!offering && slots.available_permits() == args.inflight && gap <= 0 && pending == 0)
            || t0.elapsed() > deadline
        {
            break;
        }
    }
    let wall = t0.elapsed().as_secs_f64();

    // 201 → board: the client's 201 time against the inbox row of that player's event.
    let mut stmt = probe.prepare(
        "SELECT o.subject, i.processed_at FROM platform_outbox o JOIN platform_inbox i
         ON i.event_id = o.event_id AND i.consumer = ?1 WHERE o.topic = 'quiz-attempt-evaluated'",
    )?;
    let applied_at: HashMap<String, DateTime<Utc>> = stmt
        .query_map([ATTEMPTS_CONSUMER], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .filter_map(Result::ok)
        .filter_map(|(subject, at)| {
            let user = subject.rsplit('/').next()?.to_owned();
            Some((
                user,
                DateTime::parse_from_rfc3339(&at).ok()?.with_timezone(&Utc),
            ))
        })
        .collect();
    let done = done_at.lock().unwrap().clone();
    let mut to_board = Vec::new();
    let mut latency: Vec<f64> = done.iter().map(|d| d.2).collect();
    let mut missing = 0;
    for (i, at, _) in &done {
        match applied_at.get(&format!("rush-{i:07}")) {
            Some(on_board) => {
                let ms = (on_board.timestamp_millis()
                    - DateTime::<Utc>::from(*at).timestamp_millis())
                    as f64;
                to_board.push(ms.max(0.0));
            }
            None => missing += 1,
        }
    }
    to_board.sort_by(f64::total_cmp);
    latency.sort_by(f64::total_cmp);
    let acc = accepted.load(Ordering::Relaxed);
    println!();
    println!(
        "summary (load average at end: {}; the machine is shared, so read the ratios)",
        loadavg()
    );
    println!(
        "  offered {} attempts in {offer_secs} s, accepted {acc} (201), shed client-side {}, failed {}; wall {wall:.1} s",
        offered.load(Ordering::Relaxed),
        shed.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!(
        "  201 latency ms: p50 {:.1}  p99 {:.1}  max {:.1}",
        pct(&latency, 0.5),
        pct(&latency, 0.99),
        pct(&latency, 1.0)
    );
    println!(
        "  201 -> on the board ms: p50 {:.0}  p99 {:.0}  max {:.0}  ({} measured, {missing} never applied)",
        pct(&to_board, 0.5),
        pct(&to_board, 0.99),
        pct(&to_board, 1.0),
        to_board.len()
    );
    println!(
        "  largest outbox backlog {max_pending} rows; largest accepted-but-not-on-the-board {max_gap}"
    );
    println!(
        "  at scale 1/{scale:.1}, the peak minute's {:.0}/s is {rate_peak:.0}/s here: to carry it at full scale this path needs {:.0}x this machine's throughput",
        peak, scale
    );
    drop(stmt);
    probe_close(probe)
}

fn probe_close(c: rusqlite::Connection) -> Result<()> {
    c.close().map_err(|(_, e)| anyhow!("{e}"))
}
