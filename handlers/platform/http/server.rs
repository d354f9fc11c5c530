//! The one HTTP/1.1 server loop (hyper on a bound `TcpListener`), used by the handler and by the
//! local host. It turns every request into an `ApiRequest` and hands it to a `Handler`; routing
//! belongs to the handler, not to this module. What it guarantees on every listener:
//!
//! - **Bodies**: each request's limit (`Handler::body_limit`) is enforced from `Content-Length`
//!   before a byte is read (so an oversize `Expect: 100-continue` is refused at once, never
//!   answered "continue") and again while reading chunked bodies; the bytes of all bodies being
//!   read at once are bounded (`max_inflight_body`), beyond which requests get a 503.
//! - **Time**: request headers must arrive within `header_timeout`, a body within
//!   `body_timeout` (408), and a connection idle for `idle_timeout` is closed.
//! - **Connections**: at most `max_connections` at once; one more is accepted and closed at once
//!   (the descriptor is freed, `/api/health` stays reachable once idle ones time out).
//! - **Hygiene**: paths with `.`/`..` segments, raw or percent-encoded, are refused (400);
//!   `CONNECT` and other unknown methods get a 405 instead of a panic; `HEAD` is answered as
//!   `GET` without a body; hyper's own 400/414/431 answers get problem+json bodies; a client
//!   that goes away is logged at DEBUG.

use super::{ApiRequest, ApiResponse, MAX_API_BODY, Problem};
use crate::platform::config::{ConfigError, err, string_var};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Largest body the server reads at all (invocation payloads can exceed API bodies).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Longest request target accepted (longer: 414 problem).
pub const MAX_URI: usize = 8 * 1024;
/// Largest total size of the request headers (larger: 431 problem).
pub const MAX_HEADERS: usize = 32 * 1024;

/// Something that answers requests.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, req: ApiRequest) -> ApiResponse;

    /// The largest body this request may carry; checked before and while reading it.
    fn body_limit(&self, _method: &Method, _path: &str) -> usize {
        MAX_API_BODY
    }
}

/// Timeouts and caps of a listener (`QOTD_HTTP_*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_inflight_body: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_inflight_body: 64 * 1024 * 1024,
        }
    }
}

impl ServerLimits {
    /// Reads `QOTD_HTTP_HEADER_TIMEOUT_SECONDS` (default 10), `QOTD_HTTP_IDLE_TIMEOUT_SECONDS`
    /// (120), `QOTD_HTTP_BODY_TIMEOUT_SECONDS` (30), `QOTD_HTTP_MAX_CONNECTIONS` (1024) and
    /// `QOTD_HTTP_MAX_INFLIGHT_BODY_MIB` (64).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let num = |name: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| {
            match string_var(get, name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| {
                        err(
                            name,
                            format!(
                                "'{v}' is not a whole number from {} to {}",
                                range.start(),
                                range.end()
                            ),
                        )
                    }),
            }
        };
        Ok(Self {
            header_timeout: Duration::from_secs(num(
                "QOTD_HTTP_HEADER_TIMEOUT_SECONDS",
                d.header_timeout.as_secs(),
                1..=600,
            )?),
            idle_timeout: Duration::from_secs(num(
                "QOTD_HTTP_IDLE_TIMEOUT_SECONDS",
                d.idle_timeout.as_secs(),
                1..=3600,
            )?),
            body_timeout: Duration::from_secs(num(
                "QOTD_HTTP_BODY_TIMEOUT_SECONDS",
                d.body_timeout.as_secs(),
                1..=600,
            )?),
            max_connections: num(
                "QOTD_HTTP_MAX_CONNECTIONS",
                d.max_connections as u64,
                1..=100_000,
            )? as usize,
            max_inflight_body: num("QOTD_HTTP_MAX_INFLIGHT_BODY_MIB", 64, 4..=4096)? as usize
                * 1024
                * 1024,
        })
    }
}

/// Binds a listener with `SO_REUSEADDR`, so a restarted process can take its port back while
/// the dead one's connections sit in TIME_WAIT; "address in use" (a killed predecessor whose
/// socket the kernel has not released yet) is retried for up to 5 s.
pub async fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match bind_once(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

fn bind_once(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves `handler` on `listener` with default limits until `shutdown` resolves.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_with(listener, handler, shutdown, ServerLimits::default()).await
}

struct Shared<H> {
    handler: Arc<H>,
    limits: ServerLimits,
    body_budget: Arc<Semaphore>,
}

/// Serves `handler` on `listener` until `shutdown` resolves, then drains in-flight requests
/// (for up to 30 s).
pub async fn serve_with<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServerLimits,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let shared = Arc::new(Shared {
        handler,
        body_budget: Arc::new(Semaphore::new(limits.max_inflight_body)),
        limits,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            if refused_logged.elapsed() > Duration::from_secs(10) {
                tracing::warn!(
                    max = shared.limits.max_connections,
                    "connection limit reached; closing new connections"
                );
                refused_logged = Instant::now();
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(stream, shared, &mut stop).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Drain: wait until every connection has finished (or 30 s passed).
    let all = shared.limits.max_connections as u32;
    let _ = tokio::time::timeout(Duration::from_secs(30), connections.acquire_many(all)).await;
}

async fn serve_connection<H: Handler>(
    stream: tokio::net::TcpStream,
    shared: Arc<Shared<H>>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(ProblemIo {
        inner: stream,
        activity: activity.clone(),
        pending: None,
    });
    let (header_timeout, idle) = (shared.limits.header_timeout, shared.limits.idle_timeout);
    let svc_activity = activity.clone();
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        let activity = svc_activity.clone();
        async move {
            activity.in_flight.fetch_add(1, Ordering::SeqCst);
            let res = respond(&shared, req).await;
            activity.in_flight.fetch_sub(1, Ordering::SeqCst);
            activity.touch();
            Ok::<_, std::convert::Infallible>(res.map(Full::new))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    // Clients that go away, time out or send garbage are routine: DEBUG.
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                if !stopping
                    && activity.in_flight.load(Ordering::SeqCst) == 0
                    && activity.idle_for() > idle
                {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Last read/write time of a connection and its requests in flight.
struct Activity {
    last_ms: AtomicU64,
    epoch: Instant,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            last_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
        }
    }
    fn touch(&self) {
        self.last_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        self.epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// True when a path segment is `.` or `..`, written raw or percent-encoded (`%2e`, `%2E`).
pub fn has_dot_segment(path: &str) -> bool {
    // Without allocating: this runs on every request. A segment is a dot segment when it is
    // made of one or two dots, each written `.` or `%2e` (any case).
    fn dots(mut seg: &[u8]) -> usize {
        let mut n = 0;
        while !seg.is_empty() {
            if seg[0] == b'.' {
                seg = &seg[1..];
            } else if seg.len() >= 3 && seg[0] == b'%' && seg[1] == b'2' && seg[2] | 0x20 == b'e' {
                seg = &seg[3..];
            } else {
                return 0;
            }
            n += 1;
        }
        n
    }
    path.split('/')
        .any(|seg| matches!(dots(seg.as_bytes()), 1 | 2))
}

/// One request: checks, body, handler, HEAD.
async fn respond<H: Handler>(
    shared: &Shared<H>,
    req: http::Request<hyper::body::Incoming>,
) -> ApiResponse {
    let (parts, body) = req.into_parts();
    let head = parts.method == Method::HEAD;
    let mut res = respond_inner(shared, parts, body).await;
    if head {
        let len = res.body().len();
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        *res.body_mut() = Bytes::new();
    }
    res
}

async fn respond_inner<H: Handler>(
    shared: &Shared<H>,
    parts: http::request::Parts,
    body: hyper::body::Incoming,
) -> ApiResponse {
    let target_len = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > MAX_URI {
        return Problem::new(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            format!("request target is {target_len} bytes long; the limit is {MAX_URI}"),
        )
        .into_response();
    }
    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADERS {
        return Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            format!("request headers are {header_bytes} bytes; the limit is {MAX_HEADERS}"),
        )
        .into_response();
    }
    let method = match parts.method {
        Method::HEAD => Method::GET,
        // CONNECT names an authority, not a path: nothing here can serve it.
        Method::CONNECT => {
            let other = &parts.method;
            return Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                format!(
                    "method {} is not supported by this server",
                    other.as_str().chars().take(20).collect::<String>()
                ),
            )
            .into_response();
        }
        // Every other method (TRACE, extension methods such as QUERY) reaches the router,
        // which answers 405 with the route's `Allow` (RFC 9110 §15.5.6).
        ref other => other.clone(),
    };
    let path = parts.uri.path().to_owned();
    if !path.starts_with('/') {
        return Problem::bad_request("request target must be an origin-form path").into_response();
    }
    if has_dot_segment(&path) {
        return Problem::bad_request("request path must not contain '.' or '..' segments")
            .into_response();
    }
    let limit = shared.handler.body_limit(&method, &path).min(MAX_BODY);
    let declared = match parts.headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => return Problem::bad_request("Content-Length is not a number").into_response(),
        },
    };
    // Refuse before reading (and before hyper would answer `100 Continue`).
    if declared.is_some_and(|n| n > limit as u64) {
        return Problem::payload_too_large(limit)
            .with_header(header::CONNECTION, "close".into())
            .into_response();
    }
    let body = match tokio::time::timeout(
        shared.limits.body_timeout,
        read_limited(body, limit, declared, &shared.body_budget),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(problem)) => return problem.into_response(),
        Err(_) => {
            return Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                format!(
                    "request body did not arrive within {} seconds",
                    shared.limits.body_timeout.as_secs()
                ),
            )
            .with_header(header::CONNECTION, "close".into())
            .into_response();
        }
    };
    let req = ApiRequest {
        method,
        path,
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body: body.0,
        params: Default::default(),
    };
    let res = shared.handler.handle(req).await;
    drop(body.1);
    res
}

/// Reads a body of at most `limit` bytes, reserving its bytes from the in-flight budget as
/// they arrive (the reservation is returned with the body and released after the handler).
async fn read_limited(
    mut body: hyper::body::Incoming,
    limit: usize,
    declared: Option<u64>,
    budget: &Arc<Semaphore>,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), Problem> {
    let busy = || {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the server is reading too many request bodies at once; retry shortly",
        )
        .with_header(header::RETRY_AFTER, "1".into())
        .with_header(header::CONNECTION, "close".into())
    };
    if declared == Some(0) {
        return Ok((Bytes::new(), None));
    }
    let mut permit: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let reserve = |n: usize, permit: &mut Option<tokio::sync::OwnedSemaphorePermit>| {
        if n == 0 {
            return Ok(());
        }
        let more = budget
            .clone()
            .try_acquire_many_owned(n as u32)
            .map_err(|_| busy())?;
        match permit {
            Some(p) => p.merge(more),
            None => *permit = Some(more),
        }
        Ok::<_, Problem>(())
    };
    if let Some(n) = declared {
        reserve(n as usize, &mut permit)?;
    }
    // Keep hyper's chunks as they are and copy once at the end into an exact-size buffer:
    // no doubling growth, so a body costs its size (twice only while being joined).
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Problem::bad_request(if e.is_timeout() {
                "request body could not be read: timed out".to_owned()
            } else {
                "request body could not be read: the connection broke off".to_owned()
            })
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if total + data.len() > limit {
            return Err(
                Problem::payload_too_large(limit).with_header(header::CONNECTION, "close".into())
            );
        }
        if declared.is_none() {
            reserve(data.len(), &mut permit)?;
        }
        total += data.len();
        chunks.push(data);
    }
    let body = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().expect("one chunk"),
        _ => {
            let mut buf = BytesMut::with_capacity(total);
            for c in &chunks {
                buf.extend_from_slice(c);
            }
            buf.freeze()
        }
    };
    Ok((body, permit))
}

/// The connection's socket, wrapped to note activity and to give hyper's own error answers
/// (400/414/431, written before any handler runs, with an empty body) a problem+json body.
struct ProblemIo {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
    /// A rewritten error answer still being written, and the length hyper asked to write.
    pending: Option<(Vec<u8>, usize, usize)>,
}

/// Rewrites hyper's bodiless `HTTP/1.1 400|414|431` answer into one with a problem body.
fn rewrite_error_answer(buf: &[u8]) -> Option<Vec<u8>> {
    let (status, slug, detail) = if buf.starts_with(b"HTTP/1.1 400 ") {
        (400u16, "bad-request", "the request is not valid HTTP/1.1")
    } else if buf.starts_with(b"HTTP/1.1 414 ") {
        (414, "uri-too-long", "the request target is too long")
    } else if buf.starts_with(b"HTTP/1.1 431 ") {
        (
            431,
            "headers-too-large",
            "the request headers are too large",
        )
    } else {
        return None;
    };
    let text = std::str::from_utf8(buf).ok()?;
    let end = text.find("\r\n\r\n")?;
    let head = &text[..end];
    if end + 4 != text.len() || !head.to_ascii_lowercase().contains("\r\ncontent-length: 0") {
        return None;
    }
    let title = StatusCode::from_u16(status).ok()?.canonical_reason()?;
    let body = serde_json::json!({
        "type": format!("urn:qotd:problem:{slug}"),
        "title": title,
        "status": status,
        "detail": detail,
    })
    .to_string();
    let mut out = String::new();
    for line in head.split("\r\n") {
        if line.to_ascii_lowercase().starts_with("content-length:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("content-type: application/problem+json\r\n");
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    out.push_str(&body);
    Some(out.into_bytes())
}

impl AsyncRead for ProblemIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for ProblemIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.activity.touch();
        if self.pending.is_none()
            && let Some(rewritten) = rewrite_error_answer(buf)
        {
            self.pending = Some((rewritten, 0, buf.len()));
        }
        let this = &mut *self;
        if let Some((bytes, written, claimed)) = &mut this.pending {
            while *written < bytes.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let claimed = *claimed;
            this.pending = None;
            return Poll::Ready(Ok(claimed));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    /// Vectored, so hyper writes a response's head and body with one `writev` instead of
    /// copying the body into its head buffer first (5 % of `GET /api/quizzes/today`, profiled).
    /// hyper's own error answers are a head alone in the first slice: they still go through
    /// `poll_write`, which rewrites them.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        if self.pending.is_some() || (bufs.len() == 1 && rewrite_error_answer(first).is_some()) {
            return self.poll_write(cx, first);
        }
        self.activity.touch();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_found_raw_and_encoded() {
        for bad in [
            "/a/../b",
            "/dev/oidc/%2e%2e/x",
            "/.",
            "/a/%2E/b",
            "/a/.%2e",
            "/..",
        ] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for ok in [
            "/api/quizzes/2026-01-01",
            "/a/.well-known/x",
            "/a/...",
            "/a/b.c",
        ] {
            assert!(!has_dot_segment(ok), "{ok}");
        }
    }

    #[test]
    fn dot_segments_match_the_decode_and_compare_definition() {
        // The allocating definition it replaced, as the oracle: every string up to 6 bytes
        // over an alphabet that can spell dots, encoded dots and near misses.
        let oracle = |path: &str| {
            path.split('/').any(|seg| {
                let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
                decoded == "." || decoded == ".."
            })
        };
        let alphabet = ['.', '%', '2', 'e', 'E', '5', '/'];
        let mut paths = vec![String::new()];
        for _ in 0..6 {
            let longer: Vec<String> = paths
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            for p in &longer {
                assert_eq!(has_dot_segment(p), oracle(p), "{p:?}");
            }
            paths = longer;
        }
    }

    #[tokio::test]
    async fn a_port_left_in_time_wait_can_be_bound_again() {
        use tokio::io::AsyncReadExt;
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        // The server closes first, so its end of the connection sits in TIME_WAIT.
        drop(server_side);
        let mut b = [0u8; 1];
        let _ = client.read(&mut b).await;
        drop(client);
        drop(listener);
        let started = Instant::now();
        bind(addr)
            .await
            .expect("SO_REUSEADDR lets the restarted process bind at once");
        assert!(started.elapsed() < Duration::from_secs(1));
        // While the old listener is really alive, binding waits and then fails clearly.
        let alive = bind(addr).await.unwrap();
        let second = bind_once(addr);
        assert_eq!(second.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
        drop(alive);
    }

    #[test]
    fn hyper_error_answers_get_problem_bodies() {
        let raw =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(rewrite_error_answer(raw).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.contains("application/problem+json"), "{out}");
        assert!(out.ends_with("\"status\":431,\"title\":\"Request Header Fields Too Large\",\"type\":\"urn:qotd:problem:headers-too-large\"}") || out.contains("\"status\":431"), "{out}");
        assert!(rewrite_error_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
