//! The thin platform layer under the bounded contexts: configuration, clock, events and the
//! outbox, storage ports and backends, authentication, the HTTP edge, the Azure Functions
//! protocol with its local stand-ins, and telemetry. Nothing here knows quiz rules.

pub mod auth;
pub mod clock;
pub mod config;
pub mod events;
pub mod functions;
pub mod http;
pub mod http_client;
pub mod identity;
pub mod memo;
pub mod outbox;
pub mod retry;
pub mod secret;
pub mod servicebus;
pub mod store;
pub mod telemetry;
