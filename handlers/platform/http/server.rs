//! The one HTTP server loop (warp on a bound `TcpListener`), used by the handler and by the
//! local host. It turns every request into an `ApiRequest` (body read with a hard size limit,
//! chunked bodies accepted since the Functions host sends invocations without Content-Length)
//! and hands it to a `Handler`; routing belongs to the handler, not to this module.

use super::{ApiRequest, ApiResponse, Problem};
use async_trait::async_trait;
use bytes::{Buf, BufMut, BytesMut};
use futures_util::StreamExt;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use warp::Filter;

/// Largest body the server reads at all (invocation payloads can exceed API bodies).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Something that answers requests.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, req: ApiRequest) -> ApiResponse;
}

/// Serves `handler` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |method, path: warp::path::FullPath, query: String, headers, body| {
                let handler = handler.clone();
                async move {
                    let body = match read_limited(body, MAX_BODY).await {
                        Ok(b) => b,
                        Err(problem) => return problem.into_response(),
                    };
                    let req = ApiRequest {
                        method,
                        path: path.as_str().to_owned(),
                        query,
                        headers,
                        body,
                        params: Default::default(),
                    };
                    handler.handle(req).await
                }
            },
        );
    warp::serve(route)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

async fn read_limited<S, B>(body: S, limit: usize) -> Result<bytes::Bytes, Problem>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|e| Problem::bad_request(format!("request body could not be read: {e}")))?;
        if buf.len() + chunk.remaining() > limit {
            return Err(Problem::payload_too_large(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.put_slice(part);
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}
