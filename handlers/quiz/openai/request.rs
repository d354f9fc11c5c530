//! What is sent: the prompts, the strict `json_schema` response formats, and the chat
//! completions bodies of the three kinds of call (draft, regeneration, blind check).

use super::plan::Slot;
use super::settings::{ApiStyle, OpenAiSettings};
use crate::kernel::QuizDay;
use crate::quiz::{CHOICES_PER_QUESTION, QUESTIONS_PER_QUIZ, Question};
use serde_json::{Value, json};

/// Schema names; they also tell the kind of call apart in logs and test servers.
pub const DRAFT_SCHEMA: &str = "daily_quiz";
pub const REGENERATE_SCHEMA: &str = "quiz_question";
pub const VERIFY_SCHEMA: &str = "blind_answer";

/// Output budgets of a non-reasoning model, per kind of call (`max_completion_tokens`).
const DRAFT_MAX_TOKENS: u32 = 2500;
const REGENERATE_MAX_TOKENS: u32 = 800;
const VERIFY_MAX_TOKENS: u32 = 400;

/// Sampling temperatures of a non-reasoning model: some variety for the writer, none for the
/// checker. Reasoning models reject the parameter, so [`for_model`] removes it for them.
const WRITER_TEMPERATURE: f64 = 0.7;
const CHECKER_TEMPERATURE: f64 = 0.0;

/// Parameters reasoning models (o-series, GPT-5 family) reject with HTTP 400.
pub(super) const SAMPLING_PARAMETERS: &[&str] = &[
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
];

/// The `max_completion_tokens` of one kind of call (`schema`): the fixed output budget for a
/// non-reasoning model (never above `cap`); for a reasoning model a share of `cap`
/// (`QOTD_OPENAI_MAX_COMPLETION_TOKENS`), since hidden reasoning tokens count against it: the
/// draft gets all of it, a regeneration half, a blind check a quarter.
pub(super) fn completion_budget(schema: &str, reasoning: bool, cap: u32) -> u32 {
    let (plain, share) = match schema {
        DRAFT_SCHEMA => (DRAFT_MAX_TOKENS, 1),
        REGENERATE_SCHEMA => (REGENERATE_MAX_TOKENS, 2),
        _ => (VERIFY_MAX_TOKENS, 4),
    };
    if reasoning {
        (cap / share).max(plain)
    } else {
        plain.min(cap)
    }
}

/// The body as sent to this model: `max_completion_tokens` sized for it (`max_tokens` is never
/// sent: reasoning models reject it and every current model accepts the new name) and, for a
/// reasoning model, without the sampling parameters it rejects.
pub(super) fn for_model(body: &Value, reasoning: bool, cap: u32) -> Value {
    let mut body = body.clone();
    let schema = body["response_format"]["json_schema"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Some(map) = body.as_object_mut() {
        map.remove("max_tokens");
        if reasoning {
            for p in SAMPLING_PARAMETERS {
                map.remove(*p);
            }
        }
        map.insert(
            "max_completion_tokens".into(),
            Value::from(completion_budget(&schema, reasoning, cap)),
        );
    }
    body
}

const WRITER_PROMPT: &str = "You write the questions of Quiz of the Day, a five-question \
general-knowledge quiz that adults play once a day. Every question must follow these rules.\n\
- It tests one well-established fact that reference works agree on and that will not change: \
no current events, no opinions, no records or rankings that may change, nothing about \
private individuals.\n\
- The question is one clear sentence of at most 200 characters that makes sense before the \
choices are read.\n\
- There are exactly four choices of at most 80 characters each, all different and all \
plausible. Exactly one is correct; `correct` is its position counting from 0.\n\
- Never use 'all of the above', 'none of the above' or negated questions such as 'Which is \
NOT ...'.\n\
- The explanation (at most 300 characters) says why the correct choice is right.\n\
- Keep to the category and difficulty given for each question. Easy: most adults know it. \
Medium: a keen quiz player knows it. Hard: needs specialist knowledge, yet is still a fact.\n\
Write in English and reply only with JSON that matches the schema.";

const CHECKER_PROMPT: &str = "You check quiz questions by answering them yourself. You get a \
question and four choices. First think briefly in `reasoning` (at most two sentences), then \
copy into `answer` the one choice that is correct, exactly as written. Set `unambiguous` to \
false when no choice is correct, when more than one is, or when the question cannot be \
answered as written. Reply only with JSON that matches the schema.";

fn question_schema(slot: Slot) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["category", "difficulty", "text", "choices", "correct", "explanation"],
        "properties": {
            "category": { "type": "string", "enum": [slot.category] },
            "difficulty": { "type": "string", "enum": [slot.difficulty.as_str()] },
            "text": { "type": "string", "description": "The question, at most 200 characters." },
            "choices": {
                "type": "array",
                "description": "Exactly four different choices, at most 80 characters each.",
                "items": { "type": "string" }
            },
            "correct": {
                "type": "integer",
                "enum": [0, 1, 2, 3],
                "description": "Position of the correct choice, counting from 0."
            },
            "explanation": {
                "type": "string",
                "description": "Why the correct choice is right, at most 300 characters."
            }
        }
    })
}

fn draft_schema(plan: &[Slot; QUESTIONS_PER_QUIZ]) -> Value {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for (i, slot) in plan.iter().enumerate() {
        let key = format!("question_{}", i + 1);
        properties.insert(key.clone(), question_schema(*slot));
        required.push(Value::String(key));
    }
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": properties
    })
}

fn regenerate_schema(slot: Slot) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["question"],
        "properties": { "question": question_schema(slot) }
    })
}

fn verify_schema(presented: &[String]) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["reasoning", "answer", "unambiguous"],
        "properties": {
            "reasoning": { "type": "string" },
            "answer": { "type": "string", "enum": presented },
            "unambiguous": { "type": "boolean" }
        }
    })
}

fn describe_slot(n: usize, slot: Slot) -> String {
    format!(
        "Question {n}: category {}, difficulty {}.",
        slot.category,
        slot.difficulty.as_str()
    )
}

/// The choices in the order the checker sees them: rotated by 1 to 3 places, so the position
/// the writer chose tells the checker nothing.
pub(super) fn presented_choices(q: &Question, day: QuizDay, position: usize) -> Vec<String> {
    let shift = 1 + (day.ordinal().rem_euclid(3) as usize + position) % 3;
    let mut choices = q.choices.clone();
    choices.rotate_left(shift % CHOICES_PER_QUESTION);
    choices
}

/// A chat completions body: the system and user messages, the strict schema as
/// `response_format`, and `model` when the endpoint speaks the v1 style. The output budget is
/// set per model when it is sent (`for_model`).
fn chat_body(
    settings: &OpenAiSettings,
    system: &str,
    user: String,
    schema_name: &str,
    schema: Value,
    temperature: f64,
) -> Value {
    let mut body = json!({
        "messages": [
            { "role": "system", "content": system },
            { "role": "user", "content": user }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": { "name": schema_name, "strict": true, "schema": schema }
        },
        "temperature": temperature
    });
    if settings.api_style == ApiStyle::V1 {
        body["model"] = Value::String(settings.deployment.clone());
    }
    body
}

/// Step 2: the five questions of `day` in one call, one schema slot per planned position.
pub(super) fn draft_body(
    settings: &OpenAiSettings,
    day: QuizDay,
    plan: &[Slot; QUESTIONS_PER_QUIZ],
) -> Value {
    let mut user =
        format!("Write the quiz for {day}. Five questions, each about a different fact:\n");
    for (i, slot) in plan.iter().enumerate() {
        user.push_str(&describe_slot(i + 1, *slot));
        user.push('\n');
    }
    chat_body(
        settings,
        WRITER_PROMPT,
        user,
        DRAFT_SCHEMA,
        draft_schema(plan),
        WRITER_TEMPERATURE,
    )
}

/// Step 4: a new question for `position` (planned as `slot`) after the last one was rejected
/// for `why`, naming the texts it must not repeat.
pub(super) fn regenerate_body(
    settings: &OpenAiSettings,
    day: QuizDay,
    position: usize,
    slot: Slot,
    avoid: &[String],
    why: &str,
) -> Value {
    let mut user = format!(
        "Write one question for the quiz of {day}. {}\nAn earlier question for this place was rejected because {why}. Write a question about a different fact.",
        describe_slot(position + 1, slot)
    );
    if !avoid.is_empty() {
        user.push_str("\nDo not repeat or rephrase any of these questions:\n");
        for text in avoid {
            user.push_str("- ");
            user.push_str(text);
            user.push('\n');
        }
    }
    chat_body(
        settings,
        WRITER_PROMPT,
        user,
        REGENERATE_SCHEMA,
        regenerate_schema(slot),
        WRITER_TEMPERATURE,
    )
}

/// Step 4: the blind check of a question: its text and the `presented` (rotated) choices,
/// never the answer or the explanation.
pub(super) fn verify_body(settings: &OpenAiSettings, text: &str, presented: &[String]) -> Value {
    let user = json!({ "question": text, "choices": presented }).to_string();
    chat_body(
        settings,
        CHECKER_PROMPT,
        user,
        VERIFY_SCHEMA,
        verify_schema(presented),
        CHECKER_TEMPERATURE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::quiz::Difficulty;
    use crate::quiz::openai::plan::day_plan;
    use std::collections::HashSet;

    /// Every object in a schema lists all its properties as required and forbids others.
    fn assert_strict(schema: &Value) {
        match schema {
            Value::Object(map) => {
                if map.get("type") == Some(&json!("object")) {
                    assert_eq!(
                        map.get("additionalProperties"),
                        Some(&json!(false)),
                        "{schema}"
                    );
                    let props: HashSet<&str> = map["properties"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .map(String::as_str)
                        .collect();
                    let required: HashSet<&str> = map["required"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .collect();
                    assert_eq!(props, required, "{schema}");
                }
                map.values().for_each(assert_strict);
            }
            Value::Array(items) => items.iter().for_each(assert_strict),
            _ => {}
        }
    }

    #[test]
    fn schemas_are_strict() {
        let plan = day_plan(QuizDay::parse("2026-03-01").unwrap());
        assert_strict(&draft_schema(&plan));
        assert_strict(&regenerate_schema(plan[0]));
        assert_strict(&verify_schema(&[
            "a".into(),
            "b".into(),
            "c".into(),
            "d".into(),
        ]));
    }
    #[test]
    fn reasoning_models_get_completion_budgets_and_no_sampling_parameters() {
        let body = json!({
            "response_format": { "json_schema": { "name": DRAFT_SCHEMA } },
            "max_tokens": 10, "max_completion_tokens": 2500, "temperature": 0.7, "top_p": 1
        });
        let plain = for_model(&body, false, 16_000);
        assert_eq!(plain["max_completion_tokens"], 2500);
        assert_eq!(plain["temperature"], 0.7);
        assert!(plain.get("max_tokens").is_none());
        let reasoning = for_model(&body, true, 16_000);
        assert_eq!(reasoning["max_completion_tokens"], 16_000);
        for p in ["temperature", "top_p", "max_tokens"] {
            assert!(reasoning.get(p).is_none(), "{p}");
        }
        assert_eq!(completion_budget(VERIFY_SCHEMA, true, 16_000), 4_000);
        assert_eq!(completion_budget(REGENERATE_SCHEMA, true, 16_000), 8_000);
        assert_eq!(completion_budget(DRAFT_SCHEMA, false, 1_000), 1_000);
    }

    #[test]
    fn the_checker_sees_rotated_choices() {
        let q = Question {
            id: "ai-x-1".into(),
            text: "Q?".into(),
            choices: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            correct: 0,
            explanation: "e".into(),
            category: "science".into(),
            difficulty: Difficulty::Easy,
        };
        let day = QuizDay::parse("2026-03-01").unwrap();
        for pos in 0..QUESTIONS_PER_QUIZ {
            let shown = presented_choices(&q, day, pos);
            assert_ne!(
                shown[0], "a",
                "the correct choice moved away from its position"
            );
            let set: HashSet<&String> = shown.iter().collect();
            assert_eq!(set.len(), 4);
        }
    }
}
