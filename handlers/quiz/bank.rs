//! The curated offline question bank and the generator that draws from it: the local default
//! and the fallback when a remote generator fails.
//!
//! Selection is deterministic for a given day, bank and history: questions are arranged once
//! in a fixed order (each category shuffled with a fixed seed, then categories interleaved);
//! day `d` starts reading at position `5·d`, skipping questions used in the previous 60 days
//! and categories already chosen that day. With a bank of at least 300 questions a question
//! comes back only after `bank size / 5` days (64 days for 320), so the 60-day rule holds.

use super::{
    Difficulty, Generated, Provenance, QUESTIONS_PER_QUIZ, Question, QuizGenerator, QuizSource,
    RecentQuestions, normalise_text,
};
use crate::embedded::BANK_JSON;
use crate::kernel::QuizDay;
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::OnceLock;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BankEntry {
    id: String,
    text: String,
    choices: Vec<String>,
    correct: u8,
    explanation: String,
    difficulty: String,
}

/// The bank in its fixed reading order.
#[derive(Debug)]
pub struct Bank {
    order: Vec<Question>,
}

impl Bank {
    /// Parses and validates the embedded files. A broken bank is a build defect, so this is
    /// checked by a unit test and reported with the offending id.
    pub fn parse(files: &[(&str, &str)]) -> Result<Self, String> {
        let mut by_category: Vec<Vec<Question>> = Vec::new();
        let mut ids = HashSet::new();
        for (category, json) in files {
            let entries: Vec<BankEntry> = serde_json::from_str(json)
                .map_err(|e| format!("bank file {category}.json is not valid: {e}"))?;
            let mut questions = Vec::with_capacity(entries.len());
            for e in entries {
                let q = Question {
                    difficulty: Difficulty::parse(&e.difficulty)
                        .map_err(|m| format!("{}: {m}", e.id))?,
                    id: e.id,
                    text: e.text,
                    choices: e.choices,
                    correct: e.correct,
                    explanation: e.explanation,
                    category: (*category).to_owned(),
                };
                q.validate()?;
                if !ids.insert(q.id.clone()) {
                    return Err(format!("bank question id '{}' appears twice", q.id));
                }
                questions.push(q);
            }
            questions.sort_by(|a, b| a.id.cmp(&b.id));
            shuffle(&mut questions, seed_of(category));
            by_category.push(questions);
        }
        let longest = by_category.iter().map(Vec::len).max().unwrap_or(0);
        let mut order = Vec::with_capacity(ids.len());
        for i in 0..longest {
            for questions in &by_category {
                if let Some(q) = questions.get(i) {
                    order.push(q.clone());
                }
            }
        }
        if order.len() < QUESTIONS_PER_QUIZ {
            return Err(format!(
                "the bank has {} questions; at least {QUESTIONS_PER_QUIZ} are needed",
                order.len()
            ));
        }
        Ok(Self { order })
    }

    /// The bank shipped in the binary, parsed once.
    pub fn embedded() -> &'static Bank {
        static BANK: OnceLock<Bank> = OnceLock::new();
        BANK.get_or_init(|| {
            Bank::parse(BANK_JSON).expect("the embedded question bank is valid (unit-tested)")
        })
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn questions(&self) -> &[Question] {
        &self.order
    }

    /// Picks the day's five questions: unused in `recent`, distinct categories where possible,
    /// ordered easy to hard. Relaxes the category rule, then the history rule, only if the bank
    /// cannot satisfy them (logged), so a day always gets a quiz.
    pub fn pick(&self, day: QuizDay, recent: &HashSet<String>) -> Vec<Question> {
        let n = self.order.len();
        let start = (day.ordinal().rem_euclid(n as i64) as usize * QUESTIONS_PER_QUIZ) % n;
        let mut picked: Vec<&Question> = Vec::with_capacity(QUESTIONS_PER_QUIZ);
        for pass in 0..3 {
            for i in 0..n {
                if picked.len() == QUESTIONS_PER_QUIZ {
                    break;
                }
                let q = &self.order[(start + i) % n];
                let fresh = pass == 2 || !recent.contains(&q.id);
                let new_category = pass >= 1 || picked.iter().all(|p| p.category != q.category);
                if fresh && new_category && picked.iter().all(|p| p.id != q.id) {
                    picked.push(q);
                }
            }
            if picked.len() == QUESTIONS_PER_QUIZ {
                if pass > 0 {
                    tracing::warn!(day = %day, pass, "question bank too small for its rules; relaxed them");
                }
                break;
            }
        }
        let mut out: Vec<Question> = picked.into_iter().cloned().collect();
        out.sort_by_key(|q| q.difficulty as u8);
        out
    }

    /// An unused question to stand in for the rejected one at `position` (0-based) of `day`:
    /// same category and difficulty if possible, then same category, then any; never one that
    /// `avoid` names. Deterministic per day; each position starts reading at its own offset so
    /// two replacements on one day do not compete for the same questions.
    pub fn replacement(
        &self,
        day: QuizDay,
        position: usize,
        category: &str,
        difficulty: Difficulty,
        avoid: &Avoid<'_>,
    ) -> Option<Question> {
        let all = &self.order;
        if all.is_empty() {
            return None;
        }
        let start =
            (day.ordinal().rem_euclid(all.len() as i64) as usize + position * 7) % all.len();
        let usable = |q: &Question| {
            !avoid.recent.contains(q)
                && !avoid.ids.contains(&q.id)
                && !avoid.texts.contains(&normalise_text(&q.text))
        };
        let passes: [&dyn Fn(&Question) -> bool; 3] = [
            &|q| q.category == category && q.difficulty == difficulty,
            &|q| q.category == category,
            &|_| true,
        ];
        passes.iter().find_map(|fits| {
            (0..all.len())
                .map(|i| &all[(start + i) % all.len()])
                .find(|q| fits(q) && usable(q))
                .cloned()
        })
    }
}

/// What a replacement question must not repeat: the recent days' questions, and the ids and
/// normalised texts ([`normalise_text`]) of the questions the quiz already holds.
pub struct Avoid<'a> {
    pub recent: &'a RecentQuestions,
    pub ids: &'a HashSet<String>,
    pub texts: &'a HashSet<String>,
}

/// The embedded bank as a `QuizGenerator`. `Bank::embedded` parses it on the first
/// generation, not at start-up (parsing and validating it was about 0.45 ms of every start,
/// profiled).
pub struct BankGenerator;

impl BankGenerator {
    pub fn embedded() -> Self {
        Self
    }
}

#[async_trait]
impl QuizGenerator for BankGenerator {
    async fn generate(&self, day: QuizDay, recent: &RecentQuestions) -> Result<Generated, String> {
        Ok(Generated {
            questions: Bank::embedded().pick(day, &recent.ids),
            source: QuizSource::Bank,
            provenance: Provenance::default(),
        })
    }
}

/// A stable seed per category name (FNV-1a), so the order never depends on the Rust version.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Fisher–Yates with SplitMix64: fixed forever, unlike a library RNG whose stream may change.
/// Used wherever a day's choice must never change (the bank order, the OpenAI day plan).
pub(crate) fn shuffle<T>(items: &mut [T], mut state: u64) {
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, VecDeque};

    #[test]
    fn embedded_bank_meets_the_content_rules() {
        let bank = Bank::embedded();
        assert!(
            bank.len() >= 300,
            "bank has {} questions; 60 days x 5 needs at least 300",
            bank.len()
        );
        let categories: HashSet<&str> = bank
            .questions()
            .iter()
            .map(|q| q.category.as_str())
            .collect();
        assert!(
            categories.len() >= 8,
            "only {} categories",
            categories.len()
        );
        let mut texts = HashSet::new();
        for q in bank.questions() {
            assert!(
                texts.insert(crate::quiz::normalise_text(&q.text)),
                "question text repeats: {}",
                q.id
            );
            assert!(
                (10..=200).contains(&q.text.chars().count()),
                "{}: text length",
                q.id
            );
            assert!(
                q.choices
                    .iter()
                    .all(|c| (1..=80).contains(&c.chars().count())),
                "{}: choice length",
                q.id
            );
            assert!(
                (20..=300).contains(&q.explanation.chars().count()),
                "{}: explanation length",
                q.id
            );
        }
    }

    #[test]
    fn a_year_of_days_never_repeats_within_sixty_days_and_is_deterministic() {
        let bank = Bank::embedded();
        let mut window: VecDeque<Vec<String>> = VecDeque::new();
        let mut last_seen: HashMap<String, i64> = HashMap::new();
        let first = QuizDay::parse("2026-01-01").unwrap();
        for offset in 0..400 {
            let day = QuizDay::from_date(first.date() + chrono::Days::new(offset)).unwrap();
            let recent: HashSet<String> = window.iter().flatten().cloned().collect();
            let picked = bank.pick(day, &recent);
            assert_eq!(picked, bank.pick(day, &recent), "same inputs, same quiz");
            assert_eq!(picked.len(), QUESTIONS_PER_QUIZ);
            let cats: HashSet<&str> = picked.iter().map(|q| q.category.as_str()).collect();
            assert_eq!(
                cats.len(),
                QUESTIONS_PER_QUIZ,
                "{day}: categories repeat within the quiz"
            );
            for q in &picked {
                if let Some(prev) = last_seen.insert(q.id.clone(), day.ordinal()) {
                    assert!(
                        day.ordinal() - prev > 60,
                        "{} reused after {} days",
                        q.id,
                        day.ordinal() - prev
                    );
                }
            }
            window.push_back(picked.iter().map(|q| q.id.clone()).collect());
            if window.len() > 60 {
                window.pop_front();
            }
        }
    }

    #[test]
    fn broken_bank_files_are_reported_with_the_offending_id() {
        let dup = r#"[{"id":"x-1","text":"Q?","choices":["a","b","c","d"],"correct":0,"explanation":"e","difficulty":"easy"}]"#;
        let bad_choice = r#"[{"id":"x-2","text":"Q?","choices":["a","a","c","d"],"correct":0,"explanation":"e","difficulty":"easy"}]"#;
        assert!(
            Bank::parse(&[("x", dup), ("y", dup)])
                .unwrap_err()
                .contains("x-1")
        );
        assert!(
            Bank::parse(&[("x", bad_choice)])
                .unwrap_err()
                .contains("x-2")
        );
        assert!(Bank::parse(&[("x", "{")]).unwrap_err().contains("x.json"));
    }
}
