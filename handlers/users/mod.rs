//! Users context: who is registered and under which display name. Owns the `users_*` tables;
//! publishes `UserRegistered`; reads nothing from other contexts.

pub mod http;
pub mod store;

use crate::kernel::events::{EventType, UserRegisteredV1};
use crate::kernel::{DisplayName, UserId};
use crate::platform::clock::Clock;
use crate::platform::events::NewEvent;
use crate::platform::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use std::sync::Arc;

/// A registered player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub user_id: UserId,
    pub display_name: DisplayName,
    pub registered_at: DateTime<Utc>,
}

/// The result of a registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// First registration: the profile and its `UserRegistered` event were committed together.
    Created(Profile),
    /// The caller was already registered; the stored profile is returned unchanged.
    Existing(Profile),
}

/// Persistence of the users context.
#[async_trait]
pub trait UsersRepo: Send + Sync {
    /// Inserts the profile and `event` in one transaction, unless the user exists; then returns
    /// the stored profile and writes nothing.
    async fn register(
        &self,
        profile: &Profile,
        event: &NewEvent,
    ) -> Result<Registration, StoreError>;
    async fn profile(&self, user: &UserId) -> Result<Option<Profile>, StoreError>;
}

/// Errors callers act on.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("user {0} is not registered")]
    NotRegistered(UserId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The users service.
pub struct Users {
    repo: Arc<dyn UsersRepo>,
    clock: Arc<dyn Clock>,
}

impl Users {
    pub fn new(repo: Arc<dyn UsersRepo>, clock: Arc<dyn Clock>) -> Self {
        Self { repo, clock }
    }

    /// Registers the caller once; later calls return the existing profile and emit nothing.
    pub async fn register(
        &self,
        user: UserId,
        name: DisplayName,
        correlation_id: Option<String>,
    ) -> Result<Registration, UsersError> {
        let now = self.clock.now();
        let profile = Profile {
            user_id: user,
            display_name: name,
            registered_at: now,
        };
        let event = NewEvent::new(
            EventType::UserRegistered,
            format!("users/{}", profile.user_id),
            &UserRegisteredV1 {
                user_id: profile.user_id.to_string(),
                display_name: profile.display_name.as_str().to_owned(),
                registered_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            },
            now,
            correlation_id,
        );
        Ok(self.repo.register(&profile, &event).await?)
    }

    /// The caller's profile, or `NotRegistered`.
    pub async fn profile(&self, user: &UserId) -> Result<Profile, UsersError> {
        self.repo
            .profile(user)
            .await?
            .ok_or_else(|| UsersError::NotRegistered(user.clone()))
    }
}
