//! What the composition root knows about a request once it has authenticated it, handed to
//! every HTTP adapter so none of them authenticates, reads the clock or parses headers for
//! these on its own.

use crate::kernel::QuizDay;
use crate::platform::auth::Principal;

/// The authenticated caller and the request's fixed facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub principal: Principal,
    /// The UTC day the request is served in, read once from the injected clock.
    pub today: QuizDay,
    /// The id tying events to the request that caused them.
    pub correlation_id: Option<String>,
}
