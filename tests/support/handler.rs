//! A fake Functions custom handler for the local bus: it refuses every invocation with 500 and
//! counts them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use warp::Filter;

/// A handler that refuses every invocation with 500 and counts them.
pub async fn refusing_handler() -> (String, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let route = warp::any().map(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        warp::reply::with_status("{}", warp::http::StatusCode::INTERNAL_SERVER_ERROR)
    });
    (serve_on_loopback!(route), calls)
}
