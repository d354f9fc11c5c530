//! Timer function `GenerateDailyQuiz` (schedule in functions/GenerateDailyQuiz/function.json):
//! makes sure today's (UTC) quiz exists. Idempotent, so a late, repeated or concurrent run on
//! another instance changes nothing.

use super::{Generation, QuizService};
use crate::platform::functions::InvocationFailure;
use crate::platform::functions::protocol::{InvocationRequest, InvocationResponse};

pub async fn generate_daily_quiz(
    quiz: &QuizService,
    inv: &InvocationRequest,
    binding: &str,
) -> Result<InvocationResponse, InvocationFailure> {
    let day = quiz.today();
    let late = if inv.timer_past_due(binding) {
        " (timer was past due)"
    } else {
        ""
    };
    match quiz.ensure_generated(day, None).await {
        Ok(Generation::Created(q)) => Ok(InvocationResponse::logs(vec![format!(
            "generated the quiz for {day} from {}{late}",
            q.source.as_str()
        )])),
        Ok(Generation::Existed(_)) => Ok(InvocationResponse::logs(vec![format!(
            "the quiz for {day} already exists{late}"
        )])),
        Err(e) => Err(InvocationFailure(format!(
            "generating the quiz for {day} failed: {e}"
        ))),
    }
}
