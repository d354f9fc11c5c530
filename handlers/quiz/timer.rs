//! Timer function `GenerateDailyQuiz` (schedule in functions/GenerateDailyQuiz/function.json):
//! makes sure today's (UTC) quiz exists. Idempotent, so a late, repeated or concurrent run on
//! another instance changes nothing.

use crate::app::{App, InvocationFailure};
use crate::platform::functions::protocol::{InvocationRequest, InvocationResponse};
use crate::quiz::Generation;

pub async fn generate_daily_quiz(
    app: &App,
    inv: &InvocationRequest,
    binding: &str,
) -> Result<InvocationResponse, InvocationFailure> {
    let day = app.quiz.today();
    let late = if inv.timer_past_due(binding) {
        " (timer was past due)"
    } else {
        ""
    };
    match app.quiz.ensure_generated(day, None).await {
        Ok(Generation::Created(q)) => {
            app.dispatcher.nudge();
            Ok(InvocationResponse::logs(vec![format!(
                "generated the quiz for {day} from {}{late}",
                q.source.as_str()
            )]))
        }
        Ok(Generation::Existed(_)) => Ok(InvocationResponse::logs(vec![format!(
            "the quiz for {day} already exists{late}"
        )])),
        Err(e) => Err(InvocationFailure(format!(
            "generating the quiz for {day} failed: {e}"
        ))),
    }
}
