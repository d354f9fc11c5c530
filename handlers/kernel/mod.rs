//! Value types shared by every bounded context: the "published language" of identifiers and
//! days. Each type's only constructor checks its rule (parse, don't validate), so a value that
//! exists is valid. Nothing here knows about HTTP, SQL or JSON.

pub mod events;

use chrono::{Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use std::fmt;

/// A stable player identifier: the subject claim of the caller's token.
///
/// Contract: 1..=128 characters, no control or invisible characters, not blank-looking and not
/// padded with white space. Compared byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Accepts a token subject; rejects empty, oversized or control-character values.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let len = raw.chars().count();
        if len == 0 {
            return Err("user id must not be empty".into());
        }
        if len > 128 {
            return Err(format!(
                "user id is {len} characters long; the limit is 128"
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err("user id must not contain control characters".into());
        }
        if let Some(c) = raw.chars().find(|c| is_invisible(*c)) {
            return Err(format!(
                "user id must not contain invisible or bidi-control characters (found U+{:04X})",
                c as u32
            ));
        }
        if raw.trim() != raw || is_blank_looking(raw) {
            return Err("user id must not be blank or padded with white space".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Format characters (general category Cf: zero-width spaces and joiners, bidi embeddings,
/// overrides and isolates, the BOM, tags, ...), the line and paragraph separators (Zl, Zp) and
/// the Hangul fillers: characters that render as nothing or reorder the text around them.
/// Table from Unicode 16.0 `DerivedGeneralCategory.txt`.
pub fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
        // Zl, Zp
        | 0x2028 | 0x2029
        // Hangul fillers (Lo, but blank)
        | 0x115F | 0x1160 | 0x3164 | 0xFFA0)
}

/// True when nothing in `s` would be visible: only white space, invisible characters, the
/// blank Braille pattern (U+2800), the combining grapheme joiner and variation selectors.
pub fn is_blank_looking(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_whitespace()
            || c.is_control()
            || is_invisible(c)
            || matches!(c as u32, 0x2800 | 0x034F | 0xFE00..=0xFE0F | 0xE0100..=0xE01EF)
    })
}

/// A player's public name.
///
/// Contract: trimmed, 1..=40 characters (Unicode scalar values), no control characters, no
/// invisible or bidi-control characters (`is_invisible`), at least one visible character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 40;

    /// Trims surrounding white space, then checks length and characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let len = trimmed.chars().count();
        if len == 0 {
            return Err("displayName must contain at least one non-space character".into());
        }
        if len > Self::MAX_CHARS {
            return Err(format!(
                "displayName is {len} characters long after trimming; the limit is {}",
                Self::MAX_CHARS
            ));
        }
        if let Some(c) = trimmed.chars().find(|c| c.is_control()) {
            return Err(format!(
                "displayName must not contain control characters (found U+{:04X})",
                c as u32
            ));
        }
        if let Some(c) = trimmed.chars().find(|c| is_invisible(*c)) {
            return Err(format!(
                "displayName must not contain invisible or bidi-control characters (found U+{:04X})",
                c as u32
            ));
        }
        if is_blank_looking(trimmed) {
            return Err("displayName must contain at least one visible character".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A quiz day: a UTC calendar date. The server owns "today"; clients never choose it.
///
/// Contract: between 2000-01-01 and 2100-12-31, written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuizDay(NaiveDate);

impl QuizDay {
    const FIRST: NaiveDate = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
    const LAST: NaiveDate = NaiveDate::from_ymd_opt(2100, 12, 31).unwrap();

    /// Parses exactly `YYYY-MM-DD` (no time, no offset) within the supported range.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let shape_ok = raw.len() == 10
            && raw.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(format!(
                "'{}' is not a date in the form YYYY-MM-DD",
                truncate(raw, 40)
            ));
        }
        let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map_err(|_| format!("'{raw}' is not a valid calendar date"))?;
        Self::from_date(date)
    }

    /// Wraps a calendar date; fails outside 2000-01-01..=2100-12-31.
    pub fn from_date(date: NaiveDate) -> Result<Self, String> {
        if date < Self::FIRST || date > Self::LAST {
            return Err(format!(
                "{date} is outside the supported range 2000-01-01..2100-12-31"
            ));
        }
        Ok(Self(date))
    }

    /// The UTC day containing `now`.
    pub fn of(now: chrono::DateTime<Utc>) -> Self {
        Self(now.date_naive())
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// The day before, saturating at the first supported day.
    pub fn previous(self) -> Self {
        Self(
            self.0
                .checked_sub_days(Days::new(1))
                .filter(|d| *d >= Self::FIRST)
                .unwrap_or(Self::FIRST),
        )
    }

    /// `n` days earlier, saturating at the first supported day.
    pub fn minus_days(self, n: u64) -> Self {
        Self(
            self.0
                .checked_sub_days(Days::new(n))
                .filter(|d| *d >= Self::FIRST)
                .unwrap_or(Self::FIRST),
        )
    }

    /// Days since 1970-01-01; used to seed deterministic choices.
    pub fn ordinal(self) -> i64 {
        (self.0 - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days()
    }

    /// When this day's quiz closes: the next UTC midnight.
    pub fn closes_at(self) -> chrono::DateTime<Utc> {
        let next = self.0.succ_opt().unwrap_or(self.0);
        Utc.from_utc_datetime(&next.and_time(NaiveTime::MIN))
    }

    /// ISO-8601 week label, e.g. `2026-W48`.
    pub fn iso_week(self) -> String {
        let w = self.0.iso_week();
        format!("{}-W{:02}", w.year(), w.week())
    }
}

impl fmt::Display for QuizDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Numbers, not `format("%Y-%m-%d")`: strftime parsing showed up in read profiles.
        use chrono::Datelike;
        let d = self.0;
        write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    }
}

/// Consecutive-days streak bookkeeping shared by every context that shows streaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Streak {
    pub current: u32,
    pub best: u32,
    pub last_played: Option<QuizDay>,
}

impl Streak {
    /// Records play on `day`. Returns `None` when the day is not newer than the last one
    /// recorded (a redelivered or out-of-order event), so the caller changes nothing.
    pub fn played(self, day: QuizDay) -> Option<Self> {
        let current = match self.last_played {
            Some(last) if day <= last => return None,
            Some(last) if last == day.previous() => self.current + 1,
            _ => 1,
        };
        Some(Self {
            current,
            best: self.best.max(current),
            last_played: Some(day),
        })
    }

    /// The streak as seen on `today`: it lapses once a whole day has been missed.
    pub fn as_of(self, today: QuizDay) -> u32 {
        match self.last_played {
            Some(last) if last == today || last == today.previous() => self.current,
            _ => 0,
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiz_day_parsing_table() {
        let cases = [
            ("2026-11-27", true),
            ("2024-02-29", true),
            ("2025-02-29", false),
            ("2026-13-01", false),
            ("26-11-27", false),
            ("2026-11-27T00:00:00Z", false),
            ("1999-12-31", false),
            ("2101-01-01", false),
            ("", false),
            ("２０２６-11-27", false),
        ];
        for (raw, ok) in cases {
            assert_eq!(QuizDay::parse(raw).is_ok(), ok, "{raw}");
        }
        assert_eq!(QuizDay::parse("2026-11-27").unwrap().iso_week(), "2026-W48");
        assert_eq!(
            QuizDay::parse("2026-11-27")
                .unwrap()
                .closes_at()
                .to_rfc3339(),
            "2026-11-28T00:00:00+00:00"
        );
    }

    #[test]
    fn invisible_and_blank_looking_names_and_subjects_are_refused() {
        for bad in [
            "\u{200B}",
            "\u{2800}",
            "\u{3164}",
            "\u{FEFF}",
            "a\u{202E}b",
            "Ad\u{200B}a",
            "x\u{2028}y",
            "\u{115F}\u{1160}",
            "\u{FFA0}",
            "a\u{E0041}",
            "\u{2800}\u{2800}",
        ] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?}");
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
        for bad in [" ", "\u{3000}", " a", "a\t", "\u{00A0}"] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "Ada Lovelace",
            "José",
            "李雷",
            "🙂",
            "00000000-0000-0000-0000-0000000000aa",
        ] {
            assert!(DisplayName::parse(ok).is_ok(), "{ok:?}");
            assert!(UserId::parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn display_name_rules() {
        assert_eq!(DisplayName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(41)).is_err());
        assert!(DisplayName::parse(&"é".repeat(40)).is_ok());
        assert!(DisplayName::parse("a\u{7}b").is_err());
        assert!(DisplayName::parse("Robert'); DROP TABLE users;--").is_ok());
    }

    #[test]
    fn streaks_advance_lapse_and_ignore_replays() {
        let d = |s| QuizDay::parse(s).unwrap();
        let s = Streak::default().played(d("2026-11-01")).unwrap();
        let s = s.played(d("2026-11-02")).unwrap();
        assert_eq!((s.current, s.best), (2, 2));
        assert_eq!(
            s.played(d("2026-11-02")),
            None,
            "same day twice changes nothing"
        );
        assert_eq!(s.played(d("2026-10-30")), None, "older day changes nothing");
        let s = s.played(d("2026-11-05")).unwrap();
        assert_eq!((s.current, s.best), (1, 2));
        assert_eq!(s.as_of(d("2026-11-06")), 1);
        assert_eq!(s.as_of(d("2026-11-07")), 0);
    }
}
