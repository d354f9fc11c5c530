//! HTTP adapter of the leaderboard context: `GET /api/leaderboard` and `GET /api/leaderboard/me`.

use super::{Board, Leaderboard, Period, RankedRow};
use crate::kernel::QuizDay;
use crate::platform::http::{
    ApiRequest, ApiResponse, Problem, Query, RequestContext, bytes_response, json_body,
    json_response,
};
use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

/// Reads `period` (daily | weekly | alltime, default daily) and `date` (default today; not for
/// alltime). Future periods do not exist yet: 404.
fn period_of(today: QuizDay, query: &Query) -> Result<Period, Problem> {
    let day = match query.get("date") {
        Some(raw) => Some(
            QuizDay::parse(raw)
                .map_err(|e| Problem::bad_request(format!("query parameter 'date': {e}")))?,
        ),
        None => None,
    };
    let period = match query.get("period") {
        None | Some("daily") => Period::Daily(day.unwrap_or(today)),
        Some("weekly") => Period::Weekly(day.unwrap_or(today)),
        Some("alltime") if day.is_some() => {
            return Err(Problem::bad_request(
                "query parameter 'date' does not apply to period=alltime",
            ));
        }
        Some("alltime") => Period::AllTime,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "query parameter 'period' is '{}'; expected daily, weekly or alltime",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    match &period {
        Period::Daily(d) if *d > today => Err(Problem::not_found(format!(
            "there is no daily leaderboard for {d} yet; today is {today}"
        ))),
        Period::Weekly(d) if d.iso_week() > today.iso_week() => Err(Problem::not_found(format!(
            "there is no leaderboard for week {} yet",
            d.iso_week()
        ))),
        _ => Ok(period),
    }
}

fn describe(period: &Period, total_players: u64) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("period".into(), json!(period.name()));
    match period {
        Period::Daily(d) => {
            m.insert("date".into(), json!(d.to_string()));
        }
        Period::Weekly(d) => {
            m.insert("week".into(), json!(d.iso_week()));
        }
        Period::AllTime => {}
    }
    m.insert("totalPlayers".into(), json!(total_players));
    m
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    rank: u64,
    user_id: &'a str,
    display_name: &'a str,
    score: u32,
    quizzes: u32,
}

/// `GET /api/leaderboard?period=&date=&limit=1..100&offset=`: one page of a board, ties sharing
/// a rank (1, 2, 2, 4).
pub async fn board(
    leaderboard: &Leaderboard,
    ctx: &RequestContext,
    req: ApiRequest,
) -> Result<ApiResponse, Problem> {
    let query = req.query(&["period", "date", "limit", "offset"])?;
    let period = period_of(ctx.today, &query)?;
    let limit = query.int("limit", 10, 1..=100)? as u32;
    let offset = query.int("offset", 0, 0..=1_000_000)?;
    let key = (period.key(), limit, offset);
    let board = leaderboard
        .board(period, limit, offset)
        .await
        .map_err(Problem::storage)?;
    let body = leaderboard
        .rendered
        .get_or_derive(key, &board, |b| page_body(b, limit, offset));
    Ok(bytes_response(StatusCode::OK, body))
}

/// One page as JSON (rendered once per cached page, `Leaderboard::rendered`).
fn page_body(board: &Board, limit: u32, offset: u64) -> Bytes {
    let mut body = describe(&board.period, board.total_players);
    body.insert("limit".into(), json!(limit));
    body.insert("offset".into(), json!(offset));
    let entries: Vec<Entry<'_>> = board
        .rows
        .iter()
        .map(|RankedRow { rank, row }| Entry {
            rank: *rank,
            user_id: &row.user_id,
            display_name: &row.display_name,
            score: row.score,
            quizzes: row.quizzes,
        })
        .collect();
    body.insert(
        "entries".into(),
        serde_json::to_value(entries).expect("entries serialise"),
    );
    Bytes::from(json_body(&body))
}

/// `GET /api/leaderboard/me?period=&date=`: the caller's rank and score; `rank` is null when
/// they have not played in that period.
pub async fn me(
    leaderboard: &Leaderboard,
    ctx: &RequestContext,
    req: ApiRequest,
) -> Result<ApiResponse, Problem> {
    let caller = &ctx.principal;
    let query = req.query(&["period", "date"])?;
    let period = period_of(ctx.today, &query)?;
    let (standing, total) = leaderboard
        .standing(&period, &caller.user_id)
        .await
        .map_err(Problem::storage)?;
    let mut body = describe(&period, total);
    body.insert("userId".into(), json!(caller.user_id.as_str()));
    body.insert("rank".into(), json!(standing.as_ref().map(|s| s.rank)));
    body.insert(
        "score".into(),
        json!(standing.as_ref().map_or(0, |s| s.score)),
    );
    body.insert(
        "quizzes".into(),
        json!(standing.as_ref().map_or(0, |s| s.quizzes)),
    );
    Ok(json_response(StatusCode::OK, &body))
}
