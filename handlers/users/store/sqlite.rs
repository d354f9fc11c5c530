//! `UsersRepo` on SQLite (`users_profiles`).

use crate::kernel::{DisplayName, UserId};
use crate::platform::events::NewEvent;
use crate::platform::store::StoreError;
use crate::platform::store::sqlite::{Sqlite, db, insert_event, parse_ts, ts};
use crate::users::{Profile, Registration, UsersRepo};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

fn load(conn: &Connection, user: &str) -> Result<Option<Profile>, StoreError> {
    let row = conn
        .query_row(
            "SELECT user_id, display_name, registered_at FROM users_profiles WHERE user_id = ?1",
            [user],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()
        .map_err(db)?;
    row.map(|(id, name, at)| {
        Ok(Profile {
            user_id: UserId::parse(&id).map_err(StoreError::Corrupt)?,
            display_name: DisplayName::parse(&name).map_err(StoreError::Corrupt)?,
            registered_at: parse_ts(&at)?,
        })
    })
    .transpose()
}

#[async_trait]
impl UsersRepo for Sqlite {
    async fn register(
        &self,
        profile: &Profile,
        event: &NewEvent,
    ) -> Result<Registration, StoreError> {
        let (profile, event) = (profile.clone(), event.clone());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
            let inserted = tx
                .execute(
                    "INSERT INTO users_profiles (user_id, display_name, registered_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![profile.user_id.as_str(), profile.display_name.as_str(), ts(profile.registered_at)],
                )
                .map_err(db)?;
            let outcome = if inserted == 1 {
                insert_event(&tx, &event)?;
                Registration::Created(profile)
            } else {
                let existing = load(&tx, profile.user_id.as_str())?
                    .ok_or_else(|| StoreError::Corrupt("profile vanished inside a transaction".into()))?;
                Registration::Existing(existing)
            };
            tx.commit().map_err(db)?;
            Ok(outcome)
        })
        .await
    }

    async fn profile(&self, user: &UserId) -> Result<Option<Profile>, StoreError> {
        let user = user.clone();
        self.read(move |conn| load(conn, user.as_str())).await
    }
}
