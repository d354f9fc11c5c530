//! Storage adapters of the users context, one per database engine: `sqlite.rs` and
//! `mssql.rs` (statements in `tsql.rs`). They differ only in SQL text and driver calls; the
//! rules live in the context's domain.

mod mssql;
mod sqlite;
pub mod tsql;

use crate::platform::store::Database;
use std::sync::Arc;

/// The context's repository on the opened engine.
pub fn repo(db: &Database) -> Arc<dyn super::UsersRepo> {
    match db {
        Database::Sqlite(db) => db.clone(),
        Database::Mssql(db) => db.clone(),
    }
}
