//! The day's plan: which category and difficulty each of the five positions asks for, derived
//! from the date alone so every instance (and every retry) plans the same quiz.

use crate::kernel::QuizDay;
use crate::quiz::bank::shuffle;
use crate::quiz::{Difficulty, QUESTIONS_PER_QUIZ};

/// The categories the plan rotates over: the bank's file names, so a replacement question of
/// the same category always exists.
pub const CATEGORIES: [&str; 10] = [
    "arts",
    "geography",
    "history",
    "literature",
    "music",
    "nature",
    "science",
    "space",
    "sport",
    "technology",
];

/// One position of the day's quiz: the category and difficulty asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub category: &'static str,
    pub difficulty: Difficulty,
}

/// The categories and difficulties of `day`, easy first. Derived from the date only: each pair
/// of consecutive days covers all ten categories (in an order reshuffled every pair), and the
/// difficulty mix cycles through three patterns.
pub fn day_plan(day: QuizDay) -> [Slot; QUESTIONS_PER_QUIZ] {
    use Difficulty::{Easy, Hard, Medium};
    const MIXES: [[Difficulty; QUESTIONS_PER_QUIZ]; 3] = [
        [Easy, Easy, Medium, Medium, Hard],
        [Easy, Medium, Medium, Hard, Hard],
        [Easy, Medium, Medium, Medium, Hard],
    ];
    let d = day.ordinal();
    let mut categories = CATEGORIES;
    shuffle(
        &mut categories,
        0x71f2_d00d_5eed_0001 ^ (d.div_euclid(2) as u64),
    );
    let half = d.rem_euclid(2) as usize * QUESTIONS_PER_QUIZ;
    let mix = MIXES[d.rem_euclid(3) as usize];
    std::array::from_fn(|i| Slot {
        category: categories[half + i],
        difficulty: mix[i],
    })
}

/// The stable id of the generated question at `position` (0-based) of `day`.
pub fn question_id(day: QuizDay, position: usize) -> String {
    format!("ai-{day}-{}", position + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::quiz::bank::Bank;
    use std::collections::HashSet;

    #[test]
    fn categories_are_the_bank_categories() {
        let bank: HashSet<&str> = Bank::embedded()
            .questions()
            .iter()
            .map(|q| q.category.as_str())
            .collect();
        assert_eq!(bank, CATEGORIES.into_iter().collect::<HashSet<_>>());
    }

    #[test]
    fn the_plan_is_deterministic_and_rotates() {
        let first = QuizDay::parse("2026-01-01").unwrap();
        let mut seen_mixes = HashSet::new();
        for offset in 0..60u64 {
            let day = QuizDay::from_date(first.date() + chrono::Days::new(offset)).unwrap();
            let plan = day_plan(day);
            assert_eq!(plan, day_plan(day));
            let cats: HashSet<&str> = plan.iter().map(|s| s.category).collect();
            assert_eq!(cats.len(), QUESTIONS_PER_QUIZ, "{day}: categories repeat");
            assert!(
                plan.windows(2)
                    .all(|w| w[0].difficulty as u8 <= w[1].difficulty as u8)
            );
            seen_mixes.insert(plan.map(|s| s.difficulty));
            // Each even/odd pair of days covers all ten categories.
            if day.ordinal() % 2 == 0 {
                let next = QuizDay::from_date(day.date() + chrono::Days::new(1)).unwrap();
                let both: HashSet<&str> = plan
                    .iter()
                    .chain(day_plan(next).iter())
                    .map(|s| s.category)
                    .collect();
                assert_eq!(both.len(), CATEGORIES.len(), "{day}");
            }
        }
        assert_eq!(seen_mixes.len(), 3);
    }
}
