//! qotd — Quiz of the Day, an Azure Functions custom handler.
//!
//! Layout (see ARCHITECTURE.md): three bounded contexts — `users`, `quiz`, `leaderboard` —
//! over a thin `platform` layer, wired together in `app`; `kernel` holds the value types they
//! share; `cli` is the `qotd` command line.

pub mod app;
pub mod cli;
pub mod embedded;
pub mod kernel;
pub mod leaderboard;
pub mod platform;
pub mod quiz;
pub mod users;
