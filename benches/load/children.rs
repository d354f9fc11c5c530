//! Child processes of the benchmark: the guard that kills them, CPU placement, start-up and
//! readiness, and what /proc says about them (memory, CPU, threads, context switches).

use super::*;

/// A child process that is killed (and reaped) when the guard is dropped.
pub(crate) struct ChildGuard {
    pub(crate) name: String,
    pub(crate) child: Option<Child>,
}

impl ChildGuard {
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Fails if the child has already exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Some(c) = self.child.as_mut()
            && let Some(status) = c.try_wait()?
        {
            bail!("{} exited early with {status}", self.name);
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on the pid of our own, not yet reaped, child.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    _ => break,
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How servers are placed: on CPU 0 through `taskset` when pinning is on.
#[derive(Clone)]
pub(crate) struct Placement {
    pub(crate) pinned: bool,
}

impl Placement {
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut cmd = if self.pinned {
            let mut c = Command::new("taskset");
            c.arg("-c").arg("0").arg(program);
            c
        } else {
            Command::new(program)
        };
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL the child
        // when this (spawning) thread dies, so no server outlives a crashed bench.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        cmd
    }
}

pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Runs a `qotd` subcommand to completion and fails with its output if it fails.
pub(crate) fn run_cli(qotd: &Path, args: &[&str], dir: &Path) -> Result<String> {
    let out = Command::new(qotd)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("QOTD_LOG", "warn")
        .output()
        .with_context(|| format!("cannot run {}", qotd.display()))?;
    if !out.status.success() {
        bail!(
            "qotd {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Starts `qotd serve` on a free port; its stderr goes to `<dir>/server-<n>.log`.
pub(crate) fn start_qotd(
    qotd: &Path,
    dir: &Path,
    placement: &Placement,
    log_name: &str,
) -> Result<(ChildGuard, SocketAddr, Instant)> {
    let port = free_port()?;
    let log = std::fs::File::create(dir.join(log_name))?;
    let mut cmd = placement.command(qotd);
    cmd.arg("serve")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("QOTD_DEV_ISSUER", "true")
        .env("QOTD_DATA_DIR", dir)
        .env("QOTD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let started = Instant::now();
    let child = cmd.spawn().context("cannot start qotd serve")?;
    let guard = ChildGuard {
        name: "qotd serve".into(),
        child: Some(child),
    };
    Ok((guard, SocketAddr::from(([127, 0, 0, 1], port)), started))
}

pub(crate) fn start_hello(placement: &Placement) -> Result<(ChildGuard, SocketAddr)> {
    let port = free_port()?;
    let exe = std::env::current_exe()?;
    let child = placement
        .command(&exe)
        .env(HELLO_ENV, port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start the hello server")?;
    Ok((
        ChildGuard {
            name: "hello server".into(),
            child: Some(child),
        },
        SocketAddr::from(([127, 0, 0, 1], port)),
    ))
}

/// Polls `GET /` (plain blocking sockets, 100 µs between refused connects) until it answers
/// 200, and returns when it did. Fails after 15 s or if the child exits.
pub(crate) fn wait_ready(child: &mut ChildGuard, addr: SocketAddr) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if Instant::now() > deadline {
            bail!("{} did not answer GET / within 15 s", child.name);
        }
        if let Ok(mut s) = StdTcpStream::connect(addr) {
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .is_ok()
            {
                let mut buf = [0u8; 32];
                let mut n = 0;
                while n < 12 {
                    match s.read(&mut buf[n..]) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
                let answered = Instant::now();
                if n >= 12 {
                    if &buf[9..12] == b"200" {
                        return Ok(answered);
                    }
                    bail!(
                        "{} answered GET / with {}",
                        child.name,
                        String::from_utf8_lossy(&buf[..n])
                    );
                }
            }
        }
        child.check_alive()?;
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Number of threads of a process.
pub(crate) fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// VmHWM and VmRSS of a process, in KiB.
pub(crate) fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// CPU time (user, system) a process has used so far, in seconds.
pub(crate) fn process_cpu(pid: u32) -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0.0, 0.0);
    };
    // Fields after the command name (which may contain spaces): state is [0], utime [11], stime [12].
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (
        f.get(10).copied().unwrap_or(0) as f64 / hz,
        f.get(11).copied().unwrap_or(0) as f64 / hz,
    )
}

/// Context switches (voluntary + involuntary) of all live threads of a process, and how many
/// threads there are.
pub(crate) fn context_switches(pid: u32) -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let (mut switches, mut threads) = (0, 0);
    for t in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        threads += 1;
        for l in status.lines() {
            if let Some(v) = l
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    (switches, threads)
}

/// (busy, steal, total) jiffies of one CPU from /proc/stat.
pub(crate) fn cpu_jiffies(cpu: usize) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu} ");
    let Some(line) = stat.lines().find(|l| l.starts_with(&name)) else {
        return (0, 0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let g = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = g(0) + g(1) + g(2) + g(5) + g(6);
    (busy, g(7), busy + g(3) + g(4) + g(7))
}

/// A snapshot of CPU use, to tell where the time of a phase went.
#[derive(Clone, Copy)]
pub(crate) struct CpuSnap {
    pub(crate) at: Instant,
    pub(crate) server: (f64, f64),
    pub(crate) switches: u64,
    pub(crate) threads: u64,
    pub(crate) generator: (f64, f64),
    pub(crate) cpu0: (u64, u64, u64),
    pub(crate) cpu1: (u64, u64, u64),
}

impl CpuSnap {
    pub(crate) fn take(server_pid: u32) -> Self {
        let (switches, threads) = context_switches(server_pid);
        Self {
            at: Instant::now(),
            server: process_cpu(server_pid),
            switches,
            threads,
            generator: process_cpu(std::process::id()),
            cpu0: cpu_jiffies(0),
            cpu1: cpu_jiffies(1),
        }
    }
}

/// CPU use over a measured window, as fractions of one core.
#[derive(Clone, Copy, Default)]
pub(crate) struct CpuUse {
    pub(crate) server: f64,
    pub(crate) server_sys: f64,
    /// Context switches of the server's threads over the window.
    pub(crate) switches: u64,
    /// Server threads at the end of the window.
    pub(crate) threads: u64,
    pub(crate) generator: f64,
    /// Busy time on CPU 0 not accounted to the server (other processes, interrupts): only
    /// meaningful when the server is pinned there.
    pub(crate) cpu0_other: f64,
    pub(crate) cpu0_steal: f64,
    /// Busy time on CPU 1 not accounted to the load generator.
    pub(crate) cpu1_other: f64,
}

impl CpuUse {
    /// How much of the two CPUs other processes took (0 when not pinned: unknown).
    pub(crate) fn noise(&self) -> f64 {
        if PINNED.load(Ordering::Relaxed) {
            self.cpu0_other.max(self.cpu1_other).max(self.cpu0_steal)
        } else {
            0.0
        }
    }
}

pub(crate) fn cpu_use(a: CpuSnap, b: CpuSnap) -> CpuUse {
    let wall = (b.at - a.at).as_secs_f64().max(1e-9);
    let total = (b.cpu0.2.saturating_sub(a.cpu0.2)).max(1) as f64;
    let busy0 = b.cpu0.0.saturating_sub(a.cpu0.0) as f64 / total;
    let total1 = (b.cpu1.2.saturating_sub(a.cpu1.2)).max(1) as f64;
    let busy1 = b.cpu1.0.saturating_sub(a.cpu1.0) as f64 / total1;
    let server_sys = (b.server.1 - a.server.1) / wall;
    let server = (b.server.0 - a.server.0) / wall + server_sys;
    let generator = (b.generator.0 + b.generator.1 - a.generator.0 - a.generator.1) / wall;
    CpuUse {
        server,
        server_sys,
        switches: b.switches.saturating_sub(a.switches),
        threads: b.threads,
        generator,
        cpu0_other: (busy0 - server).max(0.0),
        cpu0_steal: b.cpu0.1.saturating_sub(a.cpu0.1) as f64 / total,
        cpu1_other: (busy1 - generator).max(0.0),
    }
}

/// Events not yet published by the outbox dispatcher.
pub(crate) fn outbox_pending(db: &Path) -> Result<(u64, u64)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let pending: i64 = conn.query_row(
        "SELECT COUNT(*) FROM platform_outbox WHERE sent_at IS NULL",
        [],
        |r| r.get(0),
    )?;
    let poison: i64 = conn.query_row("SELECT COUNT(*) FROM platform_poison", [], |r| r.get(0))?;
    Ok((pending as u64, poison as u64))
}

/// Waits (at most `limit`) until the outbox is empty, so background event delivery does not
/// overlap the next measurement. Returns how long it took and what was left.
pub(crate) fn wait_drained(db: &Path, limit: Duration) -> Result<(Duration, u64, u64)> {
    let t = Instant::now();
    loop {
        let (pending, poison) = outbox_pending(db)?;
        if pending == 0 || t.elapsed() > limit {
            let took = t.elapsed();
            flush_disk();
            return Ok((took, pending, poison));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes dirty pages out now, so kernel writeback of earlier phases does not run (as CPU
/// time of other processes) during the next measurement.
pub(crate) fn flush_disk() {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
}

pub(crate) fn server_log_summary(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "empty".into();
    }
    let tail: Vec<&str> = lines.iter().rev().take(3).rev().copied().collect();
    format!(
        "{} lines; last: {}",
        lines.len(),
        tail.join(" | ").chars().take(600).collect::<String>()
    )
}
