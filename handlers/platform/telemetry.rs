//! Logging. The Functions host logs the handler's stdout at Information and its stderr at
//! Error/Warning, so warnings and errors go to stderr and everything else to stdout; JSON lines
//! with `QOTD_LOG_FORMAT=json` (Application Insights parses them). Filter: `QOTD_LOG` (default
//! `info`). Secrets are never passed to log macros; values that may hold one are redacted first.

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

/// Installs the global subscriber once; later calls are ignored (tests call it repeatedly).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_env("QOTD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = std::io::stderr
        .with_max_level(Level::WARN)
        .or_else(std::io::stdout);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
