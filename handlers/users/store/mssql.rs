//! `UsersRepo` on SQL Server (`users.profiles`).

use super::tsql as sql;
use crate::kernel::{DisplayName, UserId};
use crate::platform::events::NewEvent;
use crate::platform::store::StoreError;
use crate::platform::store::mssql::{Conn, DbError, Mssql, Tx, col, insert_event, ms, text};
use crate::users::{Profile, Registration, UsersRepo};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The primary key whose violation means "already registered".
const PROFILES_PK: &str = "users_profiles_pk";

async fn load(conn: &mut Conn, user: &str) -> Result<Option<Profile>, DbError> {
    let rows = conn.query(sql::PROFILE_SELECT, &[&user]).await?;
    rows.first()
        .map(|r| {
            Ok(Profile {
                user_id: UserId::parse(&text(r, 0, "users.profiles.user_id")?)
                    .map_err(DbError::corrupt)?,
                display_name: DisplayName::parse(&text(r, 1, "users.profiles.display_name")?)
                    .map_err(DbError::corrupt)?,
                registered_at: col::<DateTime<Utc>>(r, 2, "users.profiles.registered_at")?,
            })
        })
        .transpose()
}

#[async_trait]
impl UsersRepo for Mssql {
    async fn register(
        &self,
        profile: &Profile,
        event: &NewEvent,
    ) -> Result<Registration, StoreError> {
        let user = profile.user_id.as_str();
        let written = self
            .write("users.register", |c, _| {
                Box::pin(async move {
                    let n = c
                        .execute(
                            sql::PROFILE_INSERT,
                            &[
                                &user,
                                &profile.display_name.as_str(),
                                &ms(profile.registered_at),
                            ],
                        )
                        .await?;
                    if n == 1 {
                        insert_event(c, event).await?;
                        return Ok(Tx::Commit(Registration::Created(profile.clone())));
                    }
                    let existing = load(c, user)
                        .await?
                        .ok_or_else(|| DbError::corrupt("profile vanished inside a transaction"))?;
                    Ok(Tx::Rollback(Registration::Existing(existing)))
                })
            })
            .await;
        match written {
            Ok(r) => Ok(r),
            // A concurrent registration reached the key first (the lock hint normally makes
            // the loser wait and see the row instead): the caller is registered.
            Err(e) if e.is_unique_violation_of(PROFILES_PK) => {
                let existing = self
                    .read("users.profile", |c, _| Box::pin(load(c, user)))
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("duplicate profile not found".into()))?;
                Ok(Registration::Existing(existing))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn profile(&self, user: &UserId) -> Result<Option<Profile>, StoreError> {
        let user = user.as_str();
        Ok(self
            .read("users.profile", |c, _| Box::pin(load(c, user)))
            .await?)
    }
}
