//! What the model wrote, checked: one generated question becomes a `Question` for its slot
//! only if it matches the schema, the slot's category and difficulty, the length limits and
//! the quiz rules; otherwise the reason says why, for the regeneration prompt and provenance.

use super::clip;
use super::plan::{CATEGORIES, Slot};
use crate::quiz::{CHOICES_PER_QUESTION, Difficulty, Question};
use serde::Deserialize;
use serde_json::Value;

/// Length limits for generated questions, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
pub const MAX_CHOICE_CHARS: usize = 80;
pub const MAX_EXPLANATION_CHARS: usize = 300;

#[derive(Deserialize)]
struct RawQuestion {
    category: String,
    difficulty: String,
    text: String,
    choices: Vec<String>,
    correct: i64,
    explanation: String,
}

fn check_len(what: &str, s: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n == 0 {
        return Err(format!("its {what} is empty"));
    }
    if n > max {
        return Err(format!("its {what} has {n} characters (limit {max})"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("its {what} contains control characters"));
    }
    Ok(())
}

/// Turns one generated question into a `Question` for `slot`, or says why it cannot be used.
pub(super) fn to_question(raw: &Value, id: String, slot: Slot) -> Result<Question, String> {
    let raw: RawQuestion = serde_json::from_value(raw.clone())
        .map_err(|e| format!("it does not match the schema ({e})"))?;
    if !CATEGORIES.contains(&raw.category.as_str()) || raw.category != slot.category {
        return Err(format!(
            "its category '{}' is not the requested '{}'",
            clip(&raw.category, 40),
            slot.category
        ));
    }
    let difficulty = Difficulty::parse(&raw.difficulty).map_err(|e| clip(&e, 120))?;
    if difficulty != slot.difficulty {
        return Err(format!(
            "its difficulty '{}' is not the requested '{}'",
            difficulty.as_str(),
            slot.difficulty.as_str()
        ));
    }
    let text = raw.text.trim().to_owned();
    check_len("text", &text, MAX_TEXT_CHARS)?;
    if raw.choices.len() != CHOICES_PER_QUESTION {
        return Err(format!(
            "it has {} choices instead of {CHOICES_PER_QUESTION}",
            raw.choices.len()
        ));
    }
    let choices: Vec<String> = raw.choices.iter().map(|c| c.trim().to_owned()).collect();
    for c in &choices {
        check_len("choice", c, MAX_CHOICE_CHARS)?;
    }
    let explanation = raw.explanation.trim().to_owned();
    check_len("explanation", &explanation, MAX_EXPLANATION_CHARS)?;
    let correct = u8::try_from(raw.correct)
        .ok()
        .filter(|c| usize::from(*c) < CHOICES_PER_QUESTION)
        .ok_or_else(|| format!("its correct index {} is not 0 to 3", raw.correct))?;
    let q = Question {
        id,
        text,
        choices,
        correct,
        explanation,
        category: slot.category.to_owned(),
        difficulty,
    };
    q.validate()
        .map_err(|e| e.replace(&format!("question '{}' ", q.id), "it "))?;
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn raw(text: &str, choices: &[&str], correct: i64, explanation: &str) -> Value {
        json!({
            "category": "science", "difficulty": "easy", "text": text,
            "choices": choices, "correct": correct, "explanation": explanation
        })
    }

    #[test]
    fn generated_questions_are_validated() {
        let slot = Slot {
            category: "science",
            difficulty: Difficulty::Easy,
        };
        let ok = raw(
            "  What is H2O?  ",
            &["Water", "Salt", "Sand", "Air"],
            0,
            "Two hydrogens and one oxygen.",
        );
        let q = to_question(&ok, "ai-x-1".into(), slot).unwrap();
        assert_eq!(q.text, "What is H2O?");
        let long = "x".repeat(201);
        let long_choice = "y".repeat(81);
        let long_expl = "z".repeat(301);
        let bad = [
            (raw(&long, &["a", "b", "c", "d"], 0, "e"), "text"),
            (raw("Q?", &["a", "b", "c", &long_choice], 0, "e"), "choice"),
            (
                raw("Q?", &["a", "b", "c", "d"], 0, &long_expl),
                "explanation",
            ),
            (raw("Q?", &["a", "b", "c"], 0, "e"), "3 choices"),
            (raw("Q?", &["a", "b", "c", "A"], 0, "e"), "repeated"),
            (raw("Q?", &["a", "b", "c", " "], 0, "e"), "empty"),
            (raw("Q?", &["a", "b", "c", "d"], 4, "e"), "correct index"),
            (raw("", &["a", "b", "c", "d"], 0, "e"), "empty"),
            (raw("Q?", &["a", "b", "c", "d"], 0, ""), "empty"),
            (
                json!({"category": "cooking", "difficulty": "easy", "text": "Q?", "choices": ["a","b","c","d"], "correct": 0, "explanation": "e"}),
                "category",
            ),
            (
                json!({"category": "science", "difficulty": "hard", "text": "Q?", "choices": ["a","b","c","d"], "correct": 0, "explanation": "e"}),
                "difficulty",
            ),
            (json!({"text": "Q?"}), "schema"),
        ];
        for (value, expected) in bad {
            let e = to_question(&value, "ai-x-1".into(), slot).unwrap_err();
            assert!(e.contains(expected), "{value} -> {e}");
        }
    }
}
