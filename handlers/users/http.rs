//! HTTP adapter of the users context: `GET|POST /api/users/me`.

use super::{Profile, Registration, UsersError};
use crate::app::App;
use crate::kernel::DisplayName;
use crate::leaderboard::PlayerStats;
use crate::platform::http::{ApiRequest, ApiResponse, Problem, json_response};
use chrono::SecondsFormat;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterBody {
    display_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProfileView<'a> {
    user_id: &'a str,
    display_name: &'a str,
    registered_at: String,
    current_streak: u32,
    best_streak: u32,
    quizzes_played: u32,
    total_score: u64,
}

/// Maps users errors to problems (the one place for this context).
pub fn problem(e: UsersError) -> Problem {
    match e {
        UsersError::NotRegistered(_) => Problem::not_found(
            "you are not registered yet; POST /api/users/me with {\"displayName\": ...} first",
        ),
        UsersError::Store(e) => Problem::unavailable(e),
    }
}

fn view(profile: &Profile, stats: &PlayerStats, app: &App) -> ApiResponse {
    let today = app.quiz.today();
    json_response(
        StatusCode::OK,
        &ProfileView {
            user_id: profile.user_id.as_str(),
            display_name: profile.display_name.as_str(),
            registered_at: profile
                .registered_at
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            current_streak: stats.streak.as_of(today),
            best_streak: stats.streak.best,
            quizzes_played: stats.quizzes_played,
            total_score: stats.total_score,
        },
    )
}

/// `GET` returns the caller's profile and stats (404 until registered); `POST` registers the
/// caller: 201 the first time, 200 with the unchanged profile afterwards.
pub async fn me(app: &App, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let caller = app.authenticate(&req).await?;
    req.query(&[])?;
    if req.method == Method::POST {
        let body: RegisterBody = req.json()?;
        let name = DisplayName::parse(&body.display_name).map_err(Problem::invalid)?;
        let registration = app
            .users
            .register(caller.user_id, name, App::correlation_id(&req))
            .await
            .map_err(problem)?;
        let (status, profile) = match &registration {
            Registration::Created(p) => (StatusCode::CREATED, p),
            Registration::Existing(p) => (StatusCode::OK, p),
        };
        if status == StatusCode::CREATED {
            app.dispatcher.nudge();
        }
        let stats = app
            .leaderboard
            .player_stats(&profile.user_id)
            .await
            .map_err(Problem::unavailable)?;
        let mut res = view(profile, &stats, app);
        *res.status_mut() = status;
        return Ok(res);
    }
    let (profile, stats) = tokio::join!(
        app.users.profile(&caller.user_id),
        app.leaderboard.player_stats(&caller.user_id)
    );
    let profile = profile.map_err(problem)?;
    let stats = stats.map_err(Problem::unavailable)?;
    Ok(view(&profile, &stats, app))
}
