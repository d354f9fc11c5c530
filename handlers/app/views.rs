//! Reads that span contexts, composed here so no context imports another: the player's
//! profile with their leaderboard numbers, and "is the caller registered, under which name"
//! before an attempt.

use super::App;
use crate::kernel::DisplayName;
use crate::platform::http::{ApiRequest, ApiResponse, Problem, RequestContext, json_response};
use crate::users::{self, UsersError};
use serde_json::{Value, json};

impl App {
    /// `GET|POST /api/users/me`: the users context's profile plus the leaderboard's stats.
    pub(super) async fn users_me(
        &self,
        ctx: &RequestContext,
        req: ApiRequest,
    ) -> Result<ApiResponse, Problem> {
        let user = &ctx.principal.user_id;
        let (me, stats) = tokio::join!(
            users::http::me(&self.users, ctx, req),
            self.leaderboard.player_stats(user)
        );
        let (status, profile) = me?;
        let stats = stats.map_err(Problem::storage)?;
        let mut body = users::http::profile_fields(&profile);
        body.insert("currentStreak".into(), json!(stats.streak.as_of(ctx.today)));
        body.insert("bestStreak".into(), json!(stats.streak.best));
        body.insert("quizzesPlayed".into(), json!(stats.quizzes_played));
        body.insert("totalScore".into(), json!(stats.total_score));
        Ok(json_response(status, &Value::Object(body)))
    }

    /// The caller's display name, or 403 if they have not registered.
    pub(super) async fn registered_name(
        &self,
        ctx: &RequestContext,
    ) -> Result<DisplayName, Problem> {
        match self.users.profile(&ctx.principal.user_id).await {
            Ok(profile) => Ok(profile.display_name),
            Err(UsersError::NotRegistered(_)) => Err(Problem::forbidden(
                "register first: POST /api/users/me with {\"displayName\": ...}",
            )),
            Err(other) => Err(users::http::problem(other)),
        }
    }
}
