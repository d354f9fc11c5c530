//! The built-in HTTP/1.1 load generator: keep-alive connections sending back-to-back for a
//! fixed time, latencies in HdrHistograms, and the request builders.

use super::*;

pub(crate) type Body = Full<Bytes>;
/// Builds the request with global sequence number `seq`, or None when there is nothing left
/// to send (e.g. the attempts phase ran out of fresh users).
pub(crate) type MakeReq = Arc<dyn Fn(u64) -> Option<Request<Body>> + Send + Sync>;

#[derive(Clone, Copy)]
pub(crate) enum Stop {
    /// Each connection sends until `warmup + measure` has passed; requests started during the
    /// warm-up are not recorded.
    Time { warmup: Duration, measure: Duration },
    /// Global request count: the first `warmup` are not recorded, then `measure` more.
    Count { warmup: u64, measure: u64 },
}

#[derive(Default)]
pub(crate) struct ConnResult {
    pub(crate) hist: Option<Histogram<u64>>,
    pub(crate) ok: u64,
    pub(crate) unexpected: BTreeMap<u16, u64>,
    pub(crate) io_errors: u64,
    pub(crate) samples: Vec<String>,
    pub(crate) first_start: Option<Instant>,
    pub(crate) last_done: Option<Instant>,
    pub(crate) ran_out: bool,
}

pub(crate) struct Stats {
    pub(crate) label: String,
    pub(crate) conns: usize,
    pub(crate) hist: Histogram<u64>,
    pub(crate) ok: u64,
    pub(crate) unexpected: BTreeMap<u16, u64>,
    pub(crate) io_errors: u64,
    pub(crate) samples: Vec<String>,
    pub(crate) window: Duration,
    pub(crate) ran_out: bool,
    pub(crate) cpu: CpuUse,
}

impl Stats {
    pub(crate) fn rps(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64().max(1e-9)
    }
    pub(crate) fn p(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
    /// Server CPU time per answered request, in µs.
    pub(crate) fn cpu_us_per_req(&self) -> f64 {
        let n = (self.ok + self.errors()) as f64;
        self.cpu.server * self.window.as_secs_f64() * 1e6 / n.max(1.0)
    }
    pub(crate) fn errors(&self) -> u64 {
        self.unexpected.values().sum::<u64>() + self.io_errors
    }
    pub(crate) fn error_text(&self) -> String {
        if self.errors() == 0 {
            return "0".into();
        }
        let mut parts: Vec<String> = self
            .unexpected
            .iter()
            .map(|(s, n)| format!("{n}x{s}"))
            .collect();
        if self.io_errors > 0 {
            parts.push(format!("{}xio", self.io_errors));
        }
        parts.join(",")
    }
}

pub(crate) fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

pub(crate) async fn connect(addr: SocketAddr) -> Result<http1::SendRequest<Body>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer (giving up after `REQUEST_TIMEOUT`, so a
/// stuck server cannot stall the bench).
pub(crate) async fn exchange(
    sender: &mut http1::SendRequest<Body>,
    req: Request<Body>,
) -> Result<(StatusCode, Bytes)> {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        sender.ready().await?;
        let res = sender.send_request(req).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, body))
    })
    .await
    .map_err(|_| anyhow!("no answer within {} s", REQUEST_TIMEOUT.as_secs()))?
}

pub(crate) async fn run_conn(
    addr: SocketAddr,
    make: MakeReq,
    seq: Arc<AtomicU64>,
    stop: Stop,
    expect: StatusCode,
    t0: Instant,
) -> ConnResult {
    let mut r = ConnResult {
        hist: Some(new_hist()),
        ..Default::default()
    };
    let hist = r.hist.as_mut().expect("set above");
    let mut sender = match connect(addr).await {
        Ok(s) => Some(s),
        Err(e) => {
            r.io_errors += 1;
            r.samples.push(format!("connect: {e}"));
            None
        }
    };
    loop {
        let started = Instant::now();
        let (record, n) = match stop {
            Stop::Time { warmup, measure } => {
                if started >= t0 + warmup + measure {
                    break;
                }
                (started >= t0 + warmup, seq.fetch_add(1, Ordering::Relaxed))
            }
            Stop::Count { warmup, measure } => {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                if n >= warmup + measure {
                    break;
                }
                (n >= warmup, n)
            }
        };
        let Some(req) = make(n) else {
            r.ran_out = true;
            break;
        };
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    r.io_errors += 1;
                    if r.samples.len() < 3 {
                        r.samples.push(format!("connect: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let outcome = exchange(s, req).await;
        let done = Instant::now();
        if !record {
            if outcome.is_err() {
                sender = None;
            }
            continue;
        }
        r.first_start.get_or_insert(started);
        r.last_done = Some(done);
        let _ = hist.record(((done - started).as_micros() as u64).max(1));
        match outcome {
            Ok((status, _)) if status == expect => r.ok += 1,
            Ok((status, body)) => {
                *r.unexpected.entry(status.as_u16()).or_default() += 1;
                if r.samples.len() < 3 {
                    r.samples.push(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    ));
                }
            }
            Err(e) => {
                r.io_errors += 1;
                if r.samples.len() < 3 {
                    r.samples.push(format!("io: {e:#}"));
                }
                sender = None;
            }
        }
    }
    r
}

/// A server under load: where it listens and which process it is.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
}

pub(crate) async fn load(
    label: &str,
    target: Target,
    conns: usize,
    stop: Stop,
    expect: StatusCode,
    make: MakeReq,
) -> Stats {
    let addr = target.addr;
    let seq = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    // CPU is sampled over the measured part only (from the end of the warm-up).
    let first_snap = match stop {
        Stop::Time { warmup, .. } => {
            let pid = target.pid;
            tokio::spawn(async move {
                tokio::time::sleep_until((t0 + warmup).into()).await;
                CpuSnap::take(pid)
            })
        }
        Stop::Count { .. } => {
            let snap = CpuSnap::take(target.pid);
            tokio::spawn(async move { snap })
        }
    };
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(run_conn(addr, make.clone(), seq.clone(), stop, expect, t0)))
        .collect();
    let mut s = Stats {
        label: label.to_owned(),
        conns,
        hist: new_hist(),
        ok: 0,
        unexpected: BTreeMap::new(),
        io_errors: 0,
        samples: Vec::new(),
        window: Duration::ZERO,
        ran_out: false,
        cpu: CpuUse::default(),
    };
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    for t in tasks {
        let r = match t.await {
            Ok(r) => r,
            Err(e) => {
                s.io_errors += 1;
                s.samples.push(format!("task: {e}"));
                continue;
            }
        };
        if let Some(h) = &r.hist {
            let _ = s.hist.add(h);
        }
        s.ok += r.ok;
        s.io_errors += r.io_errors;
        s.ran_out |= r.ran_out;
        for (k, v) in r.unexpected {
            *s.unexpected.entry(k).or_default() += v;
        }
        for x in r.samples {
            if s.samples.len() < 3 {
                s.samples.push(x);
            }
        }
        first = match (first, r.first_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = match (last, r.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    let begin = match stop {
        Stop::Time { warmup, .. } => Some(t0 + warmup),
        Stop::Count { .. } => first,
    };
    if let (Some(b), Some(l)) = (begin, last) {
        s.window = l.saturating_duration_since(b);
    }
    let end_snap = CpuSnap::take(target.pid);
    if let Ok(start_snap) = first_snap.await {
        s.cpu = cpu_use(start_snap, end_snap);
    }
    println!(
        "  {:<44} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ok {:>7}  errors {}{}",
        s.label,
        s.rps(),
        s.p(0.50),
        s.p(0.99),
        s.ok,
        s.error_text(),
        if s.ran_out {
            "  (ran out of users)"
        } else {
            ""
        }
    );
    println!(
        "  {:<44} server CPU {:>4.0}% (sys {:.0}%; {:.0} µs and {:.1} context switches per request; \
         {} threads), generator CPU {:>4.0}%, others on CPU 0 {:.0}% / CPU 1 {:.0}%, steal {:.0}%",
        "",
        100.0 * s.cpu.server,
        100.0 * s.cpu.server_sys,
        s.cpu_us_per_req(),
        s.cpu.switches as f64 / ((s.ok + s.errors()) as f64).max(1.0),
        s.cpu.threads,
        100.0 * s.cpu.generator,
        100.0 * s.cpu.cpu0_other,
        100.0 * s.cpu.cpu1_other,
        100.0 * s.cpu.cpu0_steal
    );
    for x in &s.samples {
        println!("      unexpected answer: {x}");
    }
    s
}

/// `load`, measured again while other processes disturbed it (see `NOISE_LIMIT`).
pub(crate) async fn load_quiet(
    label: &str,
    target: Target,
    conns: usize,
    stop: Stop,
    expect: StatusCode,
    make: MakeReq,
) -> Stats {
    let mut best = load(label, target, conns, stop, expect, make.clone()).await;
    for _ in 0..NOISY_RETRIES {
        if best.cpu.noise() <= NOISE_LIMIT {
            break;
        }
        println!(
            "  ^ other processes took {:.0}% of a CPU during this run: measuring again",
            100.0 * best.cpu.noise()
        );
        let again = load(label, target, conns, stop, expect, make.clone()).await;
        if again.cpu.noise() < best.cpu.noise() {
            best = again;
        }
    }
    best
}

pub(crate) fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).expect("JWTs are header-safe")
}

pub(crate) fn request(
    method: Method,
    uri: &Uri,
    auth: Option<&HeaderValue>,
    body: Option<Bytes>,
) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri.clone())
        .header(HOST, "127.0.0.1");
    if let Some(a) = auth {
        b = b.header(AUTHORIZATION, a.clone());
    }
    if body.is_some() {
        b = b.header(CONTENT_TYPE, "application/json");
    }
    b.body(Full::new(body.unwrap_or_default()))
        .expect("valid request")
}

/// GET on a fresh connection; the JSON answer (or why not).
pub(crate) async fn get_json(
    addr: SocketAddr,
    path: &str,
    auth: &HeaderValue,
) -> Result<serde_json::Value> {
    let mut s = connect(addr).await?;
    let uri: Uri = path.parse()?;
    let (status, body) = exchange(&mut s, request(Method::GET, &uri, Some(auth), None)).await?;
    if status != StatusCode::OK {
        bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// A repeatable pseudo-random mix (splitmix64).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// All-time score of seeded player `i`: multiples of 10 from 0 to 2,990, skewed towards low
/// scores (most players have played a few times, few have played a lot).
pub(crate) fn seeded_score(i: u64) -> u32 {
    let u = (mix(i) >> 11) as f64 / (1u64 << 53) as f64;
    10 * (300.0 * u * u) as u32
}

/// The seeded player ids the rank phase asks for: one per block of the range, at a pseudo-random
/// place in the block.
pub(crate) fn rank_user(k: usize) -> String {
    let block = SEEDED_PLAYERS / RANK_USERS as u64;
    let i = k as u64 * block + mix(k as u64 ^ 0xABCD) % block;
    format!("seed-{i:07}")
}

/// Mints one token per user on `threads` threads (RS256 signing is the slow part).
pub(crate) fn mint_all(
    issuer: &DevIssuer,
    users: &[String],
    threads: usize,
) -> Result<Vec<HeaderValue>> {
    let chunk = users.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = users
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> Result<Vec<HeaderValue>> {
                    part.iter()
                        .map(|u| {
                            let t = issuer.mint(u, Some(u), &[], Duration::from_secs(3600))?;
                            Ok(bearer(&t))
                        })
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(users.len());
        for h in handles {
            all.extend(h.join().map_err(|_| anyhow!("minting thread panicked"))??);
        }
        Ok(all)
    })
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Process start to first answer on `GET /`, `STARTS` times on the existing database in `dir`.
pub(crate) fn measure_starts(
    qotd: &Path,
    dir: &Path,
    placement: &Placement,
    tag: &str,
) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    for i in 0..STARTS {
        let (mut child, addr, started) =
            start_qotd(qotd, dir, placement, &format!("start-{tag}-{i}.log"))?;
        let ready = wait_ready(&mut child, addr)?;
        v.push((ready - started).as_secs_f64() * 1000.0);
        child.stop();
    }
    Ok(v)
}

/// The same for the hello child: what starting any process and answering costs here.
pub(crate) fn measure_hello_starts(placement: &Placement) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    for _ in 0..STARTS {
        let started = Instant::now();
        let (mut child, addr) = start_hello(placement)?;
        let ready = wait_ready(&mut child, addr)?;
        v.push((ready - started).as_secs_f64() * 1000.0);
        child.stop();
    }
    Ok(v)
}

/// The commit the binary was built from, when git can tell.
pub(crate) fn revision() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!(
                "{rev}{}",
                if dirty {
                    " + uncommitted changes in tracked files"
                } else {
                    ""
                }
            )
        }
        None => "unknown (no git)".into(),
    }
}
