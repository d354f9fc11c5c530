//! HTTP adapter of the users context: `GET|POST /api/users/me`. It answers with the profile
//! alone; the composition root adds the player's leaderboard numbers (a cross-context read).

use super::{Profile, Registration, Users, UsersError};
use crate::kernel::DisplayName;
use crate::platform::http::{ApiRequest, Problem, RequestContext};
use chrono::SecondsFormat;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterBody {
    display_name: String,
}

/// Maps users errors to problems (the one place for this context).
pub fn problem(e: UsersError) -> Problem {
    match e {
        UsersError::NotRegistered(_) => Problem::not_found(
            "you are not registered yet; POST /api/users/me with {\"displayName\": ...} first",
        ),
        UsersError::Store(e) => Problem::storage(e),
    }
}

/// The profile's fields as the API shows them.
pub fn profile_fields(profile: &Profile) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("userId".into(), json!(profile.user_id.as_str()));
    m.insert("displayName".into(), json!(profile.display_name.as_str()));
    m.insert(
        "registeredAt".into(),
        json!(
            profile
                .registered_at
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        ),
    );
    m
}

/// `GET` returns the caller's profile (404 until registered); `POST` registers the caller:
/// 201 the first time, 200 with the unchanged profile afterwards.
pub async fn me(
    users: &Users,
    ctx: &RequestContext,
    req: ApiRequest,
) -> Result<(StatusCode, Profile), Problem> {
    req.query(&[])?;
    let user = ctx.principal.user_id.clone();
    if req.method == Method::POST {
        let body: RegisterBody = req.json()?;
        let name = DisplayName::parse(&body.display_name).map_err(Problem::invalid)?;
        return Ok(
            match users
                .register(user, name, ctx.correlation_id.clone())
                .await
                .map_err(problem)?
            {
                Registration::Created(p) => (StatusCode::CREATED, p),
                Registration::Existing(p) => (StatusCode::OK, p),
            },
        );
    }
    let profile = users.profile(&user).await.map_err(problem)?;
    Ok((StatusCode::OK, profile))
}
