//! Service Bus consumers of the leaderboard context (one function each, subscriptions in
//! functions/Leaderboard*/function.json).
//!
//! **Invariant:** each effect commits together with its inbox row (consumer, event id), so a
//! redelivered event changes nothing. A message that can never be processed (unparsable, wrong
//! type, impossible values) goes to the poison table and is acknowledged; a storage failure
//! fails the invocation so the host redelivers.

use super::ScoredAttempt;
use crate::app::{App, InvocationFailure};
use crate::kernel::{QuizDay, UserId};
use crate::platform::events::{
    CloudEvent, DailyQuizGeneratedV1, EventType, QuizAttemptEvaluatedV1, UserRegisteredV1,
};
use crate::platform::functions::protocol::{
    InvocationRequest, InvocationResponse, ServiceBusMessage,
};
use crate::platform::store::{Applied, InboxKey, StoreError};
use crate::quiz::{POINTS_PER_CORRECT, QUESTIONS_PER_QUIZ};

enum Handled {
    Applied(Applied),
    Poison(String),
}

async fn consume<T, F, Fut>(
    app: &App,
    consumer: &'static str,
    inv: &InvocationRequest,
    binding: &str,
    expected: EventType,
    apply: F,
) -> Result<InvocationResponse, InvocationFailure>
where
    T: for<'de> serde::Deserialize<'de>,
    F: FnOnce(InboxKey, T) -> Fut,
    Fut: std::future::Future<Output = Result<Handled, StoreError>>,
{
    let message: ServiceBusMessage = match inv.service_bus_message(binding) {
        Ok(m) => m,
        Err(reason) => return poison(app, consumer, None, "", &reason).await,
    };
    let (envelope, data) = match CloudEvent::parse_as::<T>(&message.body, expected) {
        Ok(parsed) => parsed,
        Err(reason) => {
            return poison(
                app,
                consumer,
                message.message_id.as_deref(),
                &message.body,
                &reason,
            )
            .await;
        }
    };
    let inbox = InboxKey {
        consumer,
        event_id: envelope.id.clone(),
    };
    match apply(inbox, data).await {
        Ok(Handled::Applied(Applied::Now)) => Ok(InvocationResponse::logs(vec![format!(
            "{consumer}: applied {}",
            envelope.id
        )])),
        Ok(Handled::Applied(Applied::AlreadyProcessed)) => {
            Ok(InvocationResponse::logs(vec![format!(
                "{consumer}: {} was already processed (delivery {})",
                envelope.id, message.delivery_count
            )]))
        }
        Ok(Handled::Poison(reason)) => {
            poison(app, consumer, Some(&envelope.id), &message.body, &reason).await
        }
        Err(e) => Err(InvocationFailure(format!("{consumer}: {e}"))),
    }
}

async fn poison(
    app: &App,
    consumer: &str,
    message_id: Option<&str>,
    payload: &str,
    reason: &str,
) -> Result<InvocationResponse, InvocationFailure> {
    tracing::error!(
        consumer,
        message_id,
        reason,
        "poison message stored and acknowledged"
    );
    app.events
        .record_poison(consumer, message_id, payload, reason, app.clock.now())
        .await
        .map_err(|e| InvocationFailure(format!("{consumer}: cannot store poison message: {e}")))?;
    Ok(InvocationResponse::logs(vec![format!(
        "{consumer}: poison message stored: {reason}"
    )]))
}

/// `UserRegistered` → the player exists on boards, with their display name.
pub async fn on_user_registered(
    app: &App,
    inv: &InvocationRequest,
    binding: &str,
) -> Result<InvocationResponse, InvocationFailure> {
    consume(
        app,
        "leaderboard.user-registered",
        inv,
        binding,
        EventType::UserRegistered,
        |inbox, e: UserRegisteredV1| async move {
            let user = match UserId::parse(&e.user_id) {
                Ok(u) => u,
                Err(why) => return Ok(Handled::Poison(why)),
            };
            app.leaderboard
                .apply_registration(&inbox, &user, &e.display_name)
                .await
                .map(Handled::Applied)
        },
    )
    .await
}

/// `DailyQuizGenerated` → the day is open on the leaderboard.
pub async fn on_quiz_generated(
    app: &App,
    inv: &InvocationRequest,
    binding: &str,
) -> Result<InvocationResponse, InvocationFailure> {
    consume(
        app,
        "leaderboard.daily-quiz-generated",
        inv,
        binding,
        EventType::DailyQuizGenerated,
        |inbox, e: DailyQuizGeneratedV1| async move {
            let day = match QuizDay::parse(&e.quiz_date) {
                Ok(d) => d,
                Err(why) => return Ok(Handled::Poison(why)),
            };
            app.leaderboard
                .open_day(&inbox, day)
                .await
                .map(Handled::Applied)
        },
    )
    .await
}

/// `QuizAttemptEvaluated` → daily, weekly and all-time scores and the streak.
pub async fn on_attempt_evaluated(
    app: &App,
    inv: &InvocationRequest,
    binding: &str,
) -> Result<InvocationResponse, InvocationFailure> {
    consume(
        app,
        "leaderboard.quiz-attempt-evaluated",
        inv,
        binding,
        EventType::QuizAttemptEvaluated,
        |inbox, e: QuizAttemptEvaluatedV1| async move {
            let (user, day) = match (UserId::parse(&e.user_id), QuizDay::parse(&e.quiz_date)) {
                (Ok(u), Ok(d)) => (u, d),
                (Err(why), _) | (_, Err(why)) => return Ok(Handled::Poison(why)),
            };
            let max = QUESTIONS_PER_QUIZ as u32 * POINTS_PER_CORRECT;
            if e.score > max || e.score != e.correct * POINTS_PER_CORRECT || e.correct > e.total {
                return Ok(Handled::Poison(format!(
                    "impossible result: score {} for {} of {} correct",
                    e.score, e.correct, e.total
                )));
            }
            let attempt = ScoredAttempt {
                user_id: user,
                display_name: e.display_name,
                day,
                score: e.score,
            };
            app.leaderboard
                .apply_attempt(&inbox, &attempt)
                .await
                .map(Handled::Applied)
        },
    )
    .await
}
