//! Service Bus consumers of the leaderboard context (one function each, subscriptions in
//! functions/Leaderboard*/function.json).
//!
//! **Invariant:** each effect commits together with its inbox row (consumer, event id), so a
//! redelivered event changes nothing. The leaderboard trusts no event: ids, names, days and
//! scores are checked against its own rules, and a message that breaks one is poison (stored
//! and acknowledged, see `platform::functions::consumer`).

use super::{AttemptApplied, Leaderboard, ScoredAttempt};
use crate::kernel::events::{
    DailyQuizGeneratedV1, EventType, QuizAttemptEvaluatedV1, UserRegisteredV1,
};
use crate::kernel::{DisplayName, QuizDay, UserId};
use crate::platform::functions::InvocationFailure;
use crate::platform::functions::consumer::{Handled, PoisonTable, consume, consume_batch};
use crate::platform::functions::protocol::{InvocationRequest, InvocationResponse};
use crate::platform::store::InboxKey;

/// Consumer names (inbox and poison rows carry them).
pub const USER_REGISTERED: &str = "leaderboard.user-registered";
pub const QUIZ_GENERATED: &str = "leaderboard.daily-quiz-generated";
pub const ATTEMPT_EVALUATED: &str = "leaderboard.quiz-attempt-evaluated";

/// `UserRegistered` → the player exists on boards, with their display name.
pub async fn on_user_registered(
    board: &Leaderboard,
    poison: &PoisonTable,
    inv: &InvocationRequest,
    binding: &str,
) -> Result<InvocationResponse, InvocationFailure> {
    consume(
        poison,
        USER_REGISTERED,
        inv,
        binding,
        EventType::UserRegistered,
        |inbox, e: UserRegisteredV1| async move {
            let (user, name) = match (
                UserId::parse(&e.user_id),
                DisplayName::parse(&e.display_name),
            ) {
                (Ok(u), Ok(n)) => (u, n),
                (Err(why), _) | (_, Err(why)) => return Ok(Handled::Poison(why)),
            };
            board
                .apply_registration(&inbox, &user, name.as_str())
                .await
                .map(Handled::Applied)
        },
    )
    .await
}

/// `DailyQuizGenerated` → the day is open on the leaderboard.
pub async fn on_quiz_generated(
    board: &Leaderboard,
    poison: &PoisonTable,
    inv: &InvocationRequest,
    binding: &str,
) -> Result<InvocationResponse, InvocationFailure> {
    consume(
        poison,
        QUIZ_GENERATED,
        inv,
        binding,
        EventType::DailyQuizGenerated,
        |inbox, e: DailyQuizGeneratedV1| async move {
            let day = match QuizDay::parse(&e.quiz_date) {
                Ok(d) => d,
                Err(why) => return Ok(Handled::Poison(why)),
            };
            board.open_day(&inbox, day).await.map(Handled::Applied)
        },
    )
    .await
}

/// `QuizAttemptEvaluated` → daily, weekly and all-time scores and the streak; at most one
/// attempt per player and day counts. The subscription is batched (`"cardinality": "many"`):
/// the events of one invocation are applied in one transaction, in order, each with its own
/// inbox row and its own decision by `scoring::apply_attempt`; an event the rules refuse is
/// poison by itself and does not fail the others.
pub async fn on_attempt_evaluated(
    board: &Leaderboard,
    poison: &PoisonTable,
    inv: &InvocationRequest,
    binding: &str,
) -> Result<InvocationResponse, InvocationFailure> {
    consume_batch(
        poison,
        ATTEMPT_EVALUATED,
        inv,
        binding,
        EventType::QuizAttemptEvaluated,
        |events: Vec<(InboxKey, QuizAttemptEvaluatedV1)>| async move {
            let today = board.today();
            let mut handled: Vec<Option<Handled>> = Vec::with_capacity(events.len());
            let mut valid = Vec::with_capacity(events.len());
            for (inbox, e) in events {
                match ScoredAttempt::from_event(e, today) {
                    Ok(a) => {
                        valid.push((inbox, a));
                        handled.push(None);
                    }
                    Err(why) => handled.push(Some(Handled::Poison(why))),
                }
            }
            let mut applied = board.apply_attempts(&valid).await?.into_iter();
            Ok(handled
                .into_iter()
                .map(|h| {
                    h.unwrap_or_else(|| match applied.next() {
                        Some(AttemptApplied::Applied(a)) => Handled::Applied(a),
                        Some(AttemptApplied::Refused(why)) => Handled::Poison(why),
                        None => {
                            Handled::Poison("the store answered fewer outcomes than events".into())
                        }
                    })
                })
                .collect())
        },
    )
    .await
}
