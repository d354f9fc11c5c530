//! The generator: plans the day, drafts, validates, verifies blind, regenerates, replaces
//! from the bank and assembles the quiz, or falls back to the bank entirely (the steps in the
//! parent module's docs).

use super::client::{CallBudget, CallError, ChatClient, Reply};
use super::clip;
use super::plan::{Slot, day_plan, question_id};
use super::request::{
    DRAFT_SCHEMA, REGENERATE_SCHEMA, VERIFY_SCHEMA, draft_body, presented_choices, regenerate_body,
    verify_body,
};
use super::settings::OpenAiSettings;
use super::validate::to_question;
use crate::kernel::QuizDay;
use crate::platform::config::ConfigError;
use crate::quiz::bank::{Avoid, Bank};
use crate::quiz::{
    Generated, Provenance, QUESTIONS_PER_QUIZ, Question, QuizGenerator, QuizSource,
    RecentQuestions, normalise_text,
};
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests in flight at once for one generation.
pub const MAX_IN_FLIGHT: usize = 2;
/// How often the five-question draft is asked for when a reply is unusable.
pub const DRAFT_ATTEMPTS: u32 = 3;
/// How often one question is regenerated after it failed validation or the blind check.
pub const REGENERATE_TRIES: u32 = 2;

/// The state one generation shares between its calls.
struct Run<'a> {
    day: QuizDay,
    plan: [Slot; QUESTIONS_PER_QUIZ],
    recent: &'a RecentQuestions,
    calls: CallBudget,
    /// The model name the service reported, from the first usable reply.
    model: Mutex<Option<String>>,
}

/// The outcome of one position after validation, verification and regeneration.
struct Settled {
    question: Option<Question>,
    /// Why earlier candidates (or the last one) were rejected, in order.
    rejections: Vec<String>,
    regenerations: u32,
}

/// Generates quizzes with Azure OpenAI and verifies them; see the module documentation.
pub struct OpenAiGenerator {
    settings: OpenAiSettings,
    client: ChatClient,
    fallback: Arc<dyn QuizGenerator>,
}

impl OpenAiGenerator {
    /// `credential` is used only when `settings.api_key` is `None`, and is then required.
    /// `fallback` (the bank) supplies the whole quiz when generation fails; single rejected
    /// questions are replaced from the embedded bank.
    pub fn new(
        settings: OpenAiSettings,
        http: impl Into<crate::platform::http_client::LazyClient>,
        credential: Option<Arc<dyn TokenCredential>>,
        fallback: Arc<dyn QuizGenerator>,
    ) -> Result<Self, ConfigError> {
        let client = ChatClient::new(&settings, http.into(), credential)?;
        Ok(Self {
            settings,
            client,
            fallback,
        })
    }

    fn remember_model(run: &Run<'_>, reply: &Reply) {
        let mut model = run
            .model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if model.is_none() {
            model.clone_from(&reply.model);
        }
    }

    /// Step 2 and 3: the five-question draft, each position validated on its own.
    async fn draft(&self, run: &Run<'_>) -> Result<Vec<Result<Question, String>>, CallError> {
        let body = draft_body(&self.settings, run.day, &run.plan);
        let mut last = CallError::Content("no draft was requested".into());
        for attempt in 1..=DRAFT_ATTEMPTS {
            match self.client.chat(&run.calls, DRAFT_SCHEMA, &body).await {
                Ok(reply) => {
                    Self::remember_model(run, &reply);
                    let mut texts: Vec<String> = Vec::new();
                    let drafted = (0..QUESTIONS_PER_QUIZ)
                        .map(|i| {
                            let raw = &reply.output[format!("question_{}", i + 1)];
                            if raw.is_null() {
                                return Err(format!("the draft has no question_{}", i + 1));
                            }
                            let q = to_question(raw, question_id(run.day, i), run.plan[i])?;
                            let norm = normalise_text(&q.text);
                            if let Some(j) = texts.iter().position(|t| *t == norm) {
                                return Err(format!("it repeats question {} of this quiz", j + 1));
                            }
                            texts.push(norm);
                            if run.recent.contains(&q) {
                                return Err("it repeats a question of the last 60 days".into());
                            }
                            Ok(q)
                        })
                        .collect();
                    return Ok(drafted);
                }
                Err(CallError::Content(why)) => {
                    tracing::info!(day = %run.day, attempt, reason = %why, "unusable quiz draft from Azure OpenAI");
                    last = CallError::Content(format!(
                        "the draft was unusable {attempt} times; last: {why}"
                    ));
                }
                Err(other) => return Err(other),
            }
        }
        Err(last)
    }

    /// Step 4: asks for a new question for `position` after the last one was rejected for `why`,
    /// naming the texts it must not repeat. The outer `Result` is the call, the inner one the
    /// validation of what came back.
    async fn regenerate(
        &self,
        run: &Run<'_>,
        position: usize,
        avoid: &[String],
        why: &str,
    ) -> Result<Result<Question, String>, CallError> {
        let slot = run.plan[position];
        let body = regenerate_body(&self.settings, run.day, position, slot, avoid, why);
        let reply = self
            .client
            .chat(&run.calls, REGENERATE_SCHEMA, &body)
            .await?;
        Self::remember_model(run, &reply);
        let candidate = to_question(
            &reply.output["question"],
            question_id(run.day, position),
            slot,
        )
        .and_then(|q| {
            let norm = normalise_text(&q.text);
            if avoid.iter().any(|t| normalise_text(t) == norm) {
                Err("it repeats another question of this quiz or a rejected one".into())
            } else if run.recent.contains(&q) {
                Err("it repeats a question of the last 60 days".into())
            } else {
                Ok(q)
            }
        });
        Ok(candidate)
    }

    /// Step 4: a blind answer. `Ok(Ok(()))` when it agrees, `Ok(Err(why))` when it does not or
    /// the checker's reply was unusable, `Err` when the service could not be asked.
    async fn verify(
        &self,
        run: &Run<'_>,
        position: usize,
        q: &Question,
    ) -> Result<Result<(), String>, CallError> {
        let presented = presented_choices(q, run.day, position);
        let body = verify_body(&self.settings, &q.text, &presented);
        let reply = match self.client.chat(&run.calls, VERIFY_SCHEMA, &body).await {
            Ok(r) => r,
            Err(CallError::Content(why)) => {
                return Ok(Err(format!("the blind check gave no usable answer: {why}")));
            }
            Err(other) => return Err(other),
        };
        let marked = &q.choices[usize::from(q.correct)];
        let Some(answer) = reply.output["answer"].as_str() else {
            return Ok(Err("the blind check gave no answer".into()));
        };
        let same = |a: &str, b: &str| a.trim().to_lowercase() == b.trim().to_lowercase();
        if !presented.iter().any(|c| same(c, answer)) {
            return Ok(Err(format!(
                "the blind check answered '{}', which is not one of the choices",
                clip(answer, 80)
            )));
        }
        if reply.output["unambiguous"] == Value::Bool(false) {
            return Ok(Err(
                "the blind check found no single correct choice (ambiguous question)".into(),
            ));
        }
        if !same(answer, marked) {
            return Ok(Err(format!(
                "the blind check chose '{}' but '{}' was marked correct",
                clip(answer, 80),
                clip(marked, 80)
            )));
        }
        Ok(Ok(()))
    }

    /// Validation, verification and bounded regeneration of one position.
    async fn settle(
        &self,
        run: &Run<'_>,
        position: usize,
        first: Result<Question, String>,
        others: Vec<String>,
    ) -> Settled {
        let mut rejections = Vec::new();
        let mut avoid = others;
        let mut candidate = first;
        let mut regenerations = 0;
        loop {
            let why = match candidate {
                Ok(q) => match self.verify(run, position, &q).await {
                    Ok(Ok(())) => {
                        return Settled {
                            question: Some(q),
                            rejections,
                            regenerations,
                        };
                    }
                    Ok(Err(why)) => {
                        avoid.push(q.text.clone());
                        why
                    }
                    Err(e) => {
                        rejections.push(format!(
                            "it could not be verified: {}",
                            e.describe(self.settings.max_total)
                        ));
                        break;
                    }
                },
                Err(why) => why,
            };
            rejections.push(why.clone());
            if regenerations == REGENERATE_TRIES {
                break;
            }
            regenerations += 1;
            candidate = match self.regenerate(run, position, &avoid, &why).await {
                Ok(c) => c,
                Err(CallError::Content(why)) => {
                    Err(format!("the regeneration was unusable: {why}"))
                }
                Err(e) => {
                    rejections.push(format!(
                        "it could not be regenerated: {}",
                        e.describe(self.settings.max_total)
                    ));
                    break;
                }
            };
        }
        Settled {
            question: None,
            rejections,
            regenerations,
        }
    }

    /// Steps 2 to 4. `Err` carries the reason for a full fallback.
    async fn generate_with_ai(&self, run: &Run<'_>) -> Result<Generated, String> {
        let budget = self.settings.max_total;
        let drafted = self.draft(run).await.map_err(|e| {
            format!(
                "Azure OpenAI deployment '{}' gave no usable draft: {}",
                self.settings.deployment,
                e.describe(budget)
            )
        })?;
        let texts: Vec<Option<String>> = drafted
            .iter()
            .map(|d| d.as_ref().ok().map(|q| q.text.clone()))
            .collect();
        let settled =
            futures_util::future::join_all(drafted.into_iter().enumerate().map(|(i, first)| {
                let others: Vec<String> = texts
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .filter_map(|(_, t)| t.clone())
                    .collect();
                self.settle(run, i, first, others)
            }))
            .await;

        // Keep the surviving generated questions (the first of any two that ended up alike),
        // then fill the gaps from the bank with questions none of them repeat.
        let mut slots: Vec<Option<Question>> = Vec::with_capacity(QUESTIONS_PER_QUIZ);
        let mut rejections: Vec<Vec<String>> = Vec::with_capacity(QUESTIONS_PER_QUIZ);
        let mut taken_texts = HashSet::new();
        let mut taken_ids = HashSet::new();
        for s in &settled {
            let mut q = s.question.clone();
            let mut reasons = s.rejections.clone();
            if let Some(kept) = &q
                && !taken_texts.insert(normalise_text(&kept.text))
            {
                reasons.push("it repeats another question of this quiz".into());
                q = None;
            }
            if let Some(kept) = &q {
                taken_ids.insert(kept.id.clone());
            }
            slots.push(q);
            rejections.push(reasons);
        }
        let survivors = slots.iter().filter(|q| q.is_some()).count();
        if survivors == 0 {
            let summary: Vec<String> = rejections
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    format!(
                        "question {}: {}",
                        i + 1,
                        r.last().map_or("rejected", String::as_str)
                    )
                })
                .collect();
            return Err(format!(
                "no generated question passed validation and the blind check ({})",
                summary.join("; ")
            ));
        }
        let mut replaced = Vec::new();
        let mut questions = Vec::with_capacity(QUESTIONS_PER_QUIZ);
        for (i, q) in slots.into_iter().enumerate() {
            let id = question_id(run.day, i);
            let reasons = rejections[i].join("; ");
            match q {
                Some(q) => {
                    if settled[i].regenerations > 0 {
                        replaced.push(format!(
                            "question {} ({id}): regenerated {} time(s) because {reasons}",
                            i + 1,
                            settled[i].regenerations
                        ));
                    }
                    questions.push(q);
                }
                None => {
                    let avoid = Avoid {
                        recent: run.recent,
                        ids: &taken_ids,
                        texts: &taken_texts,
                    };
                    let slot = run.plan[i];
                    // The embedded bank, parsed on first use (not at start-up).
                    let Some(b) = Bank::embedded().replacement(
                        run.day,
                        i,
                        slot.category,
                        slot.difficulty,
                        &avoid,
                    ) else {
                        return Err(format!(
                            "question {} failed ({reasons}) and the bank has no unused question to replace it",
                            i + 1
                        ));
                    };
                    tracing::warn!(day = %run.day, position = i + 1, bank_question = %b.id, reason = %reasons, "generated question replaced from the bank");
                    replaced.push(format!(
                        "question {} ({id}): replaced by bank question {} because {reasons}",
                        i + 1,
                        b.id
                    ));
                    taken_ids.insert(b.id.clone());
                    taken_texts.insert(normalise_text(&b.text));
                    questions.push(b);
                }
            }
        }
        if let Some(bad) = questions.iter().find_map(|q| q.validate().err()) {
            return Err(format!("the assembled quiz is invalid: {bad}"));
        }
        let model = match run
            .model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            Some(m) if m != self.settings.deployment => {
                format!("{} ({m})", self.settings.deployment)
            }
            _ => self.settings.deployment.clone(),
        };
        tracing::info!(day = %run.day, model = %model, generated = survivors, replaced = replaced.len(), "quiz generated with Azure OpenAI");
        Ok(Generated {
            questions,
            source: QuizSource::OpenAi,
            provenance: Provenance {
                model: Some(model),
                replaced,
                fallback_reason: None,
            },
        })
    }

    /// Step 5: the whole quiz from the fallback generator, with the reason recorded and logged.
    async fn fall_back(
        &self,
        day: QuizDay,
        recent: &RecentQuestions,
        reason: String,
    ) -> Result<Generated, String> {
        // The message itself carries the reason: the alert query matches "fell back to the bank".
        tracing::warn!(day = %day, deployment = %self.settings.deployment, "quiz generation fell back to the bank: {reason}");
        let mut generated = self.fallback.generate(day, recent).await?;
        generated.source = QuizSource::Bank;
        generated.provenance.model = None;
        generated.provenance.fallback_reason = Some(reason);
        Ok(generated)
    }
}

impl fmt::Debug for OpenAiGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiGenerator")
            .field("chat_url", &self.client.url())
            .field("deployment", &self.settings.deployment)
            .field("auth", &self.client.auth_kind())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl QuizGenerator for OpenAiGenerator {
    async fn generate(&self, day: QuizDay, recent: &RecentQuestions) -> Result<Generated, String> {
        let budget = self.settings.max_total;
        let run = Run {
            day,
            plan: day_plan(day),
            recent,
            calls: CallBudget::new(budget, MAX_IN_FLIGHT),
            model: Mutex::new(None),
        };
        // Every call already stops at the deadline; the outer timeout is a backstop against
        // anything that does not (a credential stuck outside its own timeout, say).
        let outcome = tokio::time::timeout_at(
            run.calls.deadline() + Duration::from_secs(1),
            self.generate_with_ai(&run),
        )
        .await
        .unwrap_or_else(|_| Err(CallError::Deadline.describe(budget)));
        match outcome {
            Ok(generated) => Ok(generated),
            Err(reason) => self.fall_back(day, recent, reason).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::platform::config::lookup;
    use crate::quiz::bank::BankGenerator;
    use crate::quiz::openai::settings::{API_KEY, DEPLOYMENT, ENDPOINT};

    const BASE: (&str, &str) = (ENDPOINT, "https://res.openai.azure.com/");

    #[test]
    fn the_key_is_redacted_in_debug_output() {
        let s = OpenAiSettings::from_lookup(lookup(&[
            BASE,
            (DEPLOYMENT, "d"),
            (API_KEY, "sk-THIS-IS-SECRET"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.api_key.as_ref().unwrap().expose(), "sk-THIS-IS-SECRET");
        let debug = format!("{s:?} {:?}", s.api_key);
        assert!(!debug.contains("sk-THIS-IS-SECRET"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
        let generator = OpenAiGenerator::new(
            s,
            reqwest::Client::new(),
            None,
            Arc::new(BankGenerator::embedded()),
        )
        .unwrap();
        assert!(!format!("{generator:?}").contains("sk-THIS-IS-SECRET"));
    }

    #[test]
    fn entra_needs_a_credential() {
        let s = OpenAiSettings::from_lookup(lookup(&[BASE, (DEPLOYMENT, "d")]))
            .unwrap()
            .unwrap();
        let e = OpenAiGenerator::new(
            s,
            reqwest::Client::new(),
            None,
            Arc::new(BankGenerator::embedded()),
        )
        .unwrap_err();
        assert_eq!(e.variable, API_KEY);
    }
}
