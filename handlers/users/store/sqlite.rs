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
        .prepare_cached(
            "SELECT user_id, display_name, registered_at FROM users_profiles WHERE user_id = ?1",
        )
        .and_then(|mut st| {
            st.query_row([user], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .optional()
        })
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
        // Sign-ups come in waves too: committed in groups (`write_grouped`).
        self.write_grouped(move |tx| {
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO users_profiles (user_id, display_name, registered_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut st| st.execute(params![profile.user_id.as_str(), profile.display_name.as_str(), ts(profile.registered_at)]))
                .map_err(db)?;
            let outcome = if inserted == 1 {
                insert_event(tx, &event)?;
                Registration::Created(profile)
            } else {
                let existing = load(tx, profile.user_id.as_str())?
                    .ok_or_else(|| StoreError::Corrupt("profile vanished inside a transaction".into()))?;
                Registration::Existing(existing)
            };
            Ok(outcome)
        })
        .await
    }

    async fn profile(&self, user: &UserId) -> Result<Option<Profile>, StoreError> {
        let user = user.clone();
        // One row by primary key: on the calling thread (`read_point`).
        self.read_point(move |conn| load(conn, user.as_str())).await
    }
}
