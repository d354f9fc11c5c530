//! One storage contract, every engine: each repository operation, the outbox in the domain
//! transaction, and the concurrency guarantees. Every check runs twice: `sqlite::<check>`
//! always, and `mssql::<check>` against SQL Server / Azure SQL, which is `#[ignore]`d (the
//! runner reports it as ignored) unless run with
//! `QOTD_TEST_MSSQL_URL='<ADO.NET string>' cargo test --test store_contract -- --include-ignored --test-threads=1`.
//! Ids and days are unique per run, so a shared database can be reused between runs.

use chrono::{Duration as ChronoDuration, Utc};
use qotd::kernel::events::EventType;
use qotd::kernel::{DisplayName, QuizDay, UserId};
use qotd::leaderboard::{AttemptApplied, LeaderboardRepo, Period, ScoredAttempt};
use qotd::platform::events::NewEvent;
use qotd::platform::store::{self, Applied, Database, DatabaseUrl, EventStore, InboxKey};
use qotd::quiz::QuizRepo;
use qotd::quiz::bank::Bank;
use qotd::quiz::{Attempt, Inserted, Provenance, QuestionReport, Quiz, QuizSource, Replaced};
use qotd::users::UsersRepo;
use qotd::users::{Profile, Registration};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

struct Backend {
    name: &'static str,
    stores: Stores,
    _dir: Option<tempfile::TempDir>,
}

/// One engine seen through every context's repository, as the composition root wires them.
#[derive(Clone)]
struct Stores {
    users: Arc<dyn UsersRepo>,
    quiz: Arc<dyn QuizRepo>,
    leaderboard: Arc<dyn LeaderboardRepo>,
    events: Arc<dyn EventStore>,
}

fn stores(db: &Database) -> Stores {
    Stores {
        users: qotd::users::store::repo(db),
        quiz: qotd::quiz::store::repo(db),
        leaderboard: qotd::leaderboard::store::repo(db),
        events: db.events(),
    }
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(&DatabaseUrl::Sqlite(dir.path().join("contract.db")))
        .await
        .expect("open sqlite");
    Backend {
        name: "sqlite",
        stores: stores(&db),
        _dir: Some(dir),
    }
}

async fn mssql() -> Backend {
    let url = std::env::var("QOTD_TEST_MSSQL_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .expect(
            "QOTD_TEST_MSSQL_URL must hold an ADO.NET connection string for the SQL Server run",
        );
    let parsed =
        DatabaseUrl::parse(&url).expect("QOTD_TEST_MSSQL_URL is a valid connection string");
    Backend {
        name: "mssql",
        stores: stores(&store::open(&parsed).await.expect("open mssql")),
        _dir: None,
    }
}

/// Runs each check on SQLite, and on SQL Server when asked for (`--include-ignored`).
macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(super::sqlite().await).await
                }
            )*
        }
        mod mssql {
            $(
                #[tokio::test]
                #[ignore = "needs QOTD_TEST_MSSQL_URL (a SQL Server / Azure SQL connection string)"]
                async fn $check() {
                    super::$check(super::mssql().await).await
                }
            )*
        }
    };
}

/// A run-unique tag, so rows from earlier runs on a shared database never collide.
fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A run-unique day far from real ones (year 2040-2099).
fn unique_day() -> QuizDay {
    let n = u64::from_str_radix(&tag()[..8], 16).unwrap();
    let base = chrono::NaiveDate::from_ymd_opt(2040, 1, 1).unwrap();
    QuizDay::from_date(base + chrono::Days::new(n % (59 * 365))).unwrap()
}

fn user(tag: &str, i: usize) -> UserId {
    UserId::parse(&format!("u-{tag}-{i}")).unwrap()
}

fn event(kind: EventType, subject: &str) -> NewEvent {
    NewEvent::new(
        kind,
        subject.to_owned(),
        &serde_json::json!({"k": subject}),
        Utc::now(),
        Some("corr-1".into()),
    )
}

fn quiz(day: QuizDay) -> Quiz {
    Quiz {
        day,
        questions: Bank::embedded().pick(day, &HashSet::new()),
        source: QuizSource::Bank,
        generated_at: Utc::now(),
        provenance: Provenance {
            model: Some("contract".into()),
            replaced: vec!["q2: test".into()],
            fallback_reason: None,
        },
    }
}

fn attempt(user: UserId, day: QuizDay, score: u32) -> Attempt {
    Attempt {
        user_id: user,
        day,
        answers: vec![0, 1, 2, 3, 0],
        correct: score / 10,
        total: 5,
        score,
        submitted_at: Utc::now(),
    }
}

async fn pending_topics(s: &Stores, owner: &str) -> Vec<(String, Option<String>)> {
    let claimed = s
        .events
        .claim_pending(owner, 10_000, Duration::from_secs(60), Utc::now())
        .await
        .unwrap();
    let seqs: Vec<i64> = claimed.iter().map(|e| e.seq).collect();
    s.events.mark_sent(owner, &seqs, Utc::now()).await.unwrap();
    claimed
        .into_iter()
        .map(|e| (e.topic, e.correlation_id))
        .collect()
}

async fn users_register_once_with_their_event(b: Backend) {
    {
        let s = &b.stores;
        pending_topics(s, "drain").await;
        let t = tag();
        let u = user(&t, 1);
        let profile = Profile {
            user_id: u.clone(),
            display_name: DisplayName::parse("Ada").unwrap(),
            registered_at: Utc::now(),
        };
        let first = s
            .users
            .register(&profile, &event(EventType::UserRegistered, "a"))
            .await
            .unwrap();
        assert!(matches!(first, Registration::Created(_)), "{}", b.name);
        let again = Profile {
            display_name: DisplayName::parse("Other").unwrap(),
            ..profile.clone()
        };
        match s
            .users
            .register(&again, &event(EventType::UserRegistered, "b"))
            .await
            .unwrap()
        {
            Registration::Existing(p) => assert_eq!(p.display_name.as_str(), "Ada", "{}", b.name),
            other => panic!("{}: {other:?}", b.name),
        }
        assert_eq!(
            s.users
                .profile(&u)
                .await
                .unwrap()
                .unwrap()
                .display_name
                .as_str(),
            "Ada"
        );
        assert!(s.users.profile(&user(&t, 2)).await.unwrap().is_none());
        let events = pending_topics(s, "o1").await;
        assert_eq!(
            events,
            vec![("user-registered".to_owned(), Some("corr-1".to_owned()))],
            "{}: exactly one event",
            b.name
        );
    }
}

async fn quizzes_are_unique_per_day_and_replaceable_only_before_attempts(b: Backend) {
    {
        let s = &b.stores;
        let day = unique_day();
        let q = quiz(day);
        assert_eq!(
            s.quiz
                .insert_quiz(&q, &event(EventType::DailyQuizGenerated, "q1"))
                .await
                .unwrap(),
            Inserted::Yes
        );
        assert_eq!(
            s.quiz
                .insert_quiz(&q, &event(EventType::DailyQuizGenerated, "q2"))
                .await
                .unwrap(),
            Inserted::AlreadyExists,
            "{}",
            b.name
        );
        let stored = s.quiz.quiz(day).await.unwrap().unwrap();
        assert_eq!(
            stored.questions, q.questions,
            "{}: questions round-trip in order",
            b.name
        );
        assert_eq!(
            stored.provenance, q.provenance,
            "{}: provenance round-trips",
            b.name
        );
        let ids = s
            .quiz
            .recent_questions(
                day.minus_days(1),
                QuizDay::from_date(day.date().succ_opt().unwrap()).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!((ids.ids.len(), ids.texts.len()), (5, 5));
        assert!(q.questions.iter().all(|question| ids.contains(question)));
        assert!(
            s.quiz
                .recent_questions(day.minus_days(3), day)
                .await
                .unwrap()
                .ids
                .is_empty(),
            "until is exclusive"
        );

        let mut other = quiz(day.previous());
        other.day = day;
        assert_eq!(
            s.quiz
                .replace_quiz(&other, &event(EventType::DailyQuizGenerated, "q3"))
                .await
                .unwrap(),
            Replaced::Yes
        );
        assert_eq!(
            s.quiz.quiz(day).await.unwrap().unwrap().questions,
            other.questions
        );
        let missing = quiz(unique_day());
        assert_eq!(
            s.quiz
                .replace_quiz(&missing, &event(EventType::DailyQuizGenerated, "q4"))
                .await
                .unwrap(),
            Replaced::Missing
        );
        let t = tag();
        assert_eq!(
            s.quiz
                .insert_attempt(
                    &attempt(user(&t, 1), day, 30),
                    &event(EventType::QuizAttemptEvaluated, "a")
                )
                .await
                .unwrap(),
            Inserted::Yes
        );
        assert_eq!(
            s.quiz
                .replace_quiz(&q, &event(EventType::DailyQuizGenerated, "q5"))
                .await
                .unwrap(),
            Replaced::HasAttempts,
            "{}",
            b.name
        );
        assert_eq!(
            s.quiz.quiz(day).await.unwrap().unwrap().questions,
            other.questions,
            "{}: unchanged",
            b.name
        );
    }
}

async fn attempts_round_trip_and_list_newest_first(b: Backend) {
    {
        let s = &b.stores;
        let t = tag();
        let u = user(&t, 1);
        let d1 = unique_day();
        let d2 = QuizDay::from_date(d1.date() + chrono::Days::new(1)).unwrap();
        for d in [d1, d2] {
            s.quiz
                .insert_quiz(&quiz(d), &event(EventType::DailyQuizGenerated, "q"))
                .await
                .unwrap();
        }
        let a1 = attempt(u.clone(), d1, 20);
        s.quiz
            .insert_attempt(&a1, &event(EventType::QuizAttemptEvaluated, "1"))
            .await
            .unwrap();
        s.quiz
            .insert_attempt(
                &attempt(u.clone(), d2, 50),
                &event(EventType::QuizAttemptEvaluated, "2"),
            )
            .await
            .unwrap();
        let list = s.quiz.attempts(&u, 10).await.unwrap();
        assert_eq!(
            list.iter().map(|a| a.day).collect::<Vec<_>>(),
            vec![d2, d1],
            "{}",
            b.name
        );
        assert_eq!(s.quiz.attempts(&u, 1).await.unwrap().len(), 1);
        let got = s.quiz.attempt(&u, d1).await.unwrap().unwrap();
        assert_eq!(
            (got.answers, got.score, got.correct, got.total),
            (a1.answers, 20, 2, 5)
        );
        assert!(
            (got.submitted_at - a1.submitted_at)
                .num_milliseconds()
                .abs()
                <= 1
        );
        assert!(s.quiz.attempt(&user(&t, 2), d1).await.unwrap().is_none());
    }
}

async fn fifty_parallel_duplicate_attempts_store_one(b: Backend) {
    {
        let s = &b.stores;
        let day = unique_day();
        s.quiz
            .insert_quiz(&quiz(day), &event(EventType::DailyQuizGenerated, "q"))
            .await
            .unwrap();
        let u = user(&tag(), 1);
        let tries = (0..50).map(|i| {
            let (repo, a) = (s.quiz.clone(), attempt(u.clone(), day, (i % 6) * 10));
            tokio::spawn(async move {
                repo.insert_attempt(&a, &event(EventType::QuizAttemptEvaluated, "dup"))
                    .await
                    .unwrap()
            })
        });
        let results: Vec<Inserted> = futures_util::future::join_all(tries)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            results.iter().filter(|r| **r == Inserted::Yes).count(),
            1,
            "{}",
            b.name
        );
        assert_eq!(s.quiz.attempts(&u, 100).await.unwrap().len(), 1);
    }
}

async fn leaderboard_effects_apply_once_and_rank_with_ties(b: Backend) {
    {
        let s = &b.stores;
        let lb = &s.leaderboard;
        let t = tag();
        let day = unique_day();
        let key = |i: usize| InboxKey {
            consumer: "contract.attempts",
            event_id: format!("{t}-{i}"),
        };
        let scores = [50, 30, 30, 10, 0];
        for (i, score) in scores.iter().enumerate() {
            let reg = InboxKey {
                consumer: "contract.users",
                event_id: format!("{t}-r{i}"),
            };
            assert_eq!(
                lb.apply_registration(&reg, &user(&t, i), &format!("P{i}"), Utc::now())
                    .await
                    .unwrap(),
                Applied::Now
            );
            let a = ScoredAttempt {
                user_id: user(&t, i),
                display_name: format!("P{i}"),
                day,
                score: *score,
            };
            assert_eq!(
                lb.apply_attempt(&key(i), &a, Utc::now()).await.unwrap(),
                AttemptApplied::Applied(Applied::Now)
            );
            assert_eq!(
                lb.apply_attempt(&key(i), &a, Utc::now()).await.unwrap(),
                AttemptApplied::Applied(Applied::AlreadyProcessed),
                "{}: replay",
                b.name
            );
        }
        let daily = Period::Daily(day).key();
        let top = lb.top(&daily, 10, 0).await.unwrap();
        let ranks: Vec<(u64, u32)> = top.iter().map(|r| (r.rank, r.row.score)).collect();
        assert_eq!(
            ranks,
            vec![(1, 50), (2, 30), (2, 30), (4, 10), (5, 0)],
            "{}",
            b.name
        );
        assert_eq!(top[0].row.display_name, "P0");
        let page2 = lb.top(&daily, 2, 2).await.unwrap();
        assert_eq!(
            page2.iter().map(|r| r.rank).collect::<Vec<_>>(),
            vec![2, 4],
            "{}: ranks hold across pages",
            b.name
        );
        assert_eq!(lb.player_count(&daily).await.unwrap(), 5);
        assert_eq!(
            lb.histogram(&daily).await.unwrap(),
            Some(vec![(50, 1), (30, 2), (10, 1), (0, 1)]),
            "{}: histogram, highest score first",
            b.name
        );
        assert_eq!(lb.score(&daily, &user(&t, 2)).await.unwrap(), Some((30, 1)));
        assert_eq!(lb.score(&daily, &user(&t, 9)).await.unwrap(), None);
        let standing = lb.standing(&daily, &user(&t, 2)).await.unwrap().unwrap();
        assert_eq!(
            (standing.rank, standing.score, standing.quizzes),
            (2, 30, 1)
        );
        assert!(lb.standing(&daily, &user(&t, 9)).await.unwrap().is_none());

        // A second day: weekly/all-time add up, the streak advances, the daily board is separate.
        let next = QuizDay::from_date(day.date() + chrono::Days::new(1)).unwrap();
        let a = ScoredAttempt {
            user_id: user(&t, 4),
            display_name: "P4".into(),
            day: next,
            score: 40,
        };
        lb.apply_attempt(&key(100), &a, Utc::now()).await.unwrap();
        let all = lb
            .standing(&Period::AllTime.key(), &user(&t, 4))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((all.score, all.quizzes), (40, 2), "{}", b.name);
        let stats = lb.player_stats(&user(&t, 4)).await.unwrap().unwrap();
        assert_eq!(
            (
                stats.quizzes_played,
                stats.total_score,
                stats.streak.current,
                stats.streak.best
            ),
            (2, 40, 2, 2),
            "{}",
            b.name
        );
        assert_eq!(
            lb.standing(&Period::Daily(next).key(), &user(&t, 4))
                .await
                .unwrap()
                .unwrap()
                .rank,
            1
        );

        let open = InboxKey {
            consumer: "contract.days",
            event_id: t.clone(),
        };
        assert!(!lb.day_opened(day).await.unwrap());
        assert_eq!(
            lb.open_day(&open, day, Utc::now()).await.unwrap(),
            Applied::Now
        );
        assert_eq!(
            lb.open_day(&open, day, Utc::now()).await.unwrap(),
            Applied::AlreadyProcessed
        );
        assert!(lb.day_opened(day).await.unwrap());
    }
}

async fn concurrent_redelivery_of_one_event_has_one_effect(b: Backend) {
    {
        let s = &b.stores;
        let t = tag();
        let day = unique_day();
        let inbox = InboxKey {
            consumer: "contract.redelivery",
            event_id: t.clone(),
        };
        let a = ScoredAttempt {
            user_id: user(&t, 1),
            display_name: "R".into(),
            day,
            score: 20,
        };
        let tries = (0..10).map(|_| {
            let (repo, inbox, a) = (s.leaderboard.clone(), inbox.clone(), a.clone());
            tokio::spawn(async move { repo.apply_attempt(&inbox, &a, Utc::now()).await.unwrap() })
        });
        let results: Vec<AttemptApplied> = futures_util::future::join_all(tries)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == AttemptApplied::Applied(Applied::Now))
                .count(),
            1,
            "{}",
            b.name
        );
        let st = s
            .leaderboard
            .standing(&Period::AllTime.key(), &user(&t, 1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((st.score, st.quizzes), (20, 1), "{}", b.name);
    }
}

async fn outbox_claims_are_leases_and_two_dispatchers_get_disjoint_rows(b: Backend) {
    {
        let s = &b.stores;
        pending_topics(s, "drain").await;
        let t = tag();
        for i in 0..40 {
            let p = Profile {
                user_id: user(&t, i),
                display_name: DisplayName::parse("X").unwrap(),
                registered_at: Utc::now(),
            };
            s.users
                .register(&p, &event(EventType::UserRegistered, &format!("{t}-{i}")))
                .await
                .unwrap();
        }
        assert_eq!(s.events.pending_count().await.unwrap(), 40, "{}", b.name);
        let now = Utc::now();
        let (e1, e2) = (s.events.clone(), s.events.clone());
        let (a, b2) = tokio::join!(
            async move {
                e1.claim_pending("A", 25, Duration::from_secs(60), now)
                    .await
                    .unwrap()
            },
            async move {
                e2.claim_pending("B", 25, Duration::from_secs(60), now)
                    .await
                    .unwrap()
            },
        );
        let sa: HashSet<i64> = a.iter().map(|e| e.seq).collect();
        let sb: HashSet<i64> = b2.iter().map(|e| e.seq).collect();
        assert!(sa.is_disjoint(&sb), "{}: claims overlap", b.name);
        assert_eq!(sa.len() + sb.len(), 40);
        assert!(a.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");

        // Nothing else is claimable while the leases hold; an expired lease comes back.
        assert!(
            s.events
                .claim_pending("C", 100, Duration::from_secs(60), now)
                .await
                .unwrap()
                .is_empty()
        );
        let later = now + ChronoDuration::seconds(61);
        let reclaimed = s
            .events
            .claim_pending("C", 100, Duration::from_secs(60), later)
            .await
            .unwrap();
        assert_eq!(
            reclaimed.len(),
            40,
            "{}: expired leases are reclaimable",
            b.name
        );
        // Only the current owner can settle; a release delays the retry.
        s.events
            .mark_sent("A", &a.iter().map(|e| e.seq).collect::<Vec<_>>(), later)
            .await
            .unwrap();
        assert_eq!(
            s.events.pending_count().await.unwrap(),
            40,
            "{}: a stale owner cannot mark sent",
            b.name
        );
        let (first, rest) = reclaimed.split_first().unwrap();
        s.events
            .mark_sent("C", &rest.iter().map(|e| e.seq).collect::<Vec<_>>(), later)
            .await
            .unwrap();
        s.events
            .release(
                "C",
                first.seq,
                "broker said no",
                later + ChronoDuration::seconds(30),
            )
            .await
            .unwrap();
        assert_eq!(s.events.pending_count().await.unwrap(), 1);
        assert!(
            s.events
                .claim_pending("D", 10, Duration::from_secs(60), later)
                .await
                .unwrap()
                .is_empty(),
            "not before retry_at"
        );
        let retried = s
            .events
            .claim_pending(
                "D",
                10,
                Duration::from_secs(60),
                later + ChronoDuration::seconds(31),
            )
            .await
            .unwrap();
        assert_eq!(retried.len(), 1);
        assert!(retried[0].attempts >= 3, "{}: attempts are counted", b.name);
        s.events
            .mark_sent("D", &[retried[0].seq], later)
            .await
            .unwrap();
        assert_eq!(s.events.pending_count().await.unwrap(), 0);
    }
}

async fn poison_messages_are_kept_with_their_reason(b: Backend) {
    {
        let s = &b.stores;
        let consumer = format!("contract.poison.{}", tag());
        s.events
            .record_poison(&consumer, Some("m-1"), "{bad", "not JSON", Utc::now())
            .await
            .unwrap();
        s.events
            .record_poison(&consumer, None, "", "no body", Utc::now())
            .await
            .unwrap();
        assert_eq!(
            s.events.poison_count(&consumer).await.unwrap(),
            2,
            "{}",
            b.name
        );
        s.events.ping().await.unwrap();
        // Listing (oldest first, by consumer), reading one, deleting one.
        let listed = s.events.poison_list(Some(&consumer), 10).await.unwrap();
        assert_eq!(listed.len(), 2, "{}", b.name);
        assert!(listed[0].id < listed[1].id);
        assert_eq!(
            (
                listed[0].message_id.as_deref(),
                listed[0].payload.as_str(),
                listed[0].reason.as_str()
            ),
            (Some("m-1"), "{bad", "not JSON")
        );
        assert_eq!(listed[1].message_id, None);
        assert_eq!(
            s.events
                .poison_list(Some(&consumer), 1)
                .await
                .unwrap()
                .len(),
            1
        );
        let total = s.events.poison_total().await.unwrap();
        assert!(total >= 2);
        assert!(s.events.poison_list(None, 1000).await.unwrap().len() >= 2);
        assert_eq!(
            s.events.poison_get(listed[1].id).await.unwrap().as_ref(),
            Some(&listed[1])
        );
        assert!(s.events.poison_delete(listed[1].id).await.unwrap());
        assert!(
            !s.events.poison_delete(listed[1].id).await.unwrap(),
            "{}: gone",
            b.name
        );
        assert_eq!(s.events.poison_get(listed[1].id).await.unwrap(), None);
        assert_eq!(s.events.poison_count(&consumer).await.unwrap(), 1);
    }
}

async fn outbox_status_counts_and_a_restarted_owner_reclaims_its_leases(b: Backend) {
    {
        let s = &b.stores;
        pending_topics(s, "drain").await;
        let t = tag();
        let before = Utc::now() - ChronoDuration::seconds(1);
        for i in 0..3 {
            let p = Profile {
                user_id: user(&t, i),
                display_name: DisplayName::parse("X").unwrap(),
                registered_at: Utc::now(),
            };
            s.users
                .register(&p, &event(EventType::UserRegistered, &format!("{t}-{i}")))
                .await
                .unwrap();
        }
        let status = s.events.outbox_status().await.unwrap();
        assert_eq!(status.pending, 3, "{}", b.name);
        assert_eq!(status.topics.len(), 1, "{}: {status:?}", b.name);
        assert_eq!(status.topics[0].pending, 3);
        assert!(status.oldest.is_some_and(|o| o >= before), "{status:?}");
        let now = Utc::now();
        let owner = format!("dispatcher-{t}");
        let claimed = s
            .events
            .claim_pending(&owner, 10, Duration::from_secs(60), now)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 3);
        assert!(
            s.events
                .claim_pending("other", 10, Duration::from_secs(60), now)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.events.outbox_status().await.unwrap().pending,
            3,
            "claimed is still pending"
        );
        // The owner's process died and came back: its leases return at once, nobody else's.
        assert_eq!(s.events.reclaim_leases("someone-else").await.unwrap(), 0);
        assert_eq!(
            s.events.reclaim_leases(&owner).await.unwrap(),
            3,
            "{}",
            b.name
        );
        let again = s
            .events
            .claim_pending(&owner, 10, Duration::from_secs(60), now)
            .await
            .unwrap();
        assert_eq!(again.len(), 3);
        s.events
            .mark_sent(
                &owner,
                &again.iter().map(|e| e.seq).collect::<Vec<_>>(),
                now,
            )
            .await
            .unwrap();
        let status = s.events.outbox_status().await.unwrap();
        assert_eq!(
            (status.pending, status.oldest, status.topics.len()),
            (0, None, 0)
        );
    }
}

async fn the_dispatcher_publishes_each_event_once_and_keeps_failures_pending(b: Backend) {
    use async_trait::async_trait;
    use qotd::platform::clock::SystemClock;
    use qotd::platform::outbox::{Dispatcher, EventPublisher, PublishError};
    use qotd::platform::store::PendingEvent;
    use std::sync::Mutex;

    struct Recorder(Mutex<Vec<String>>, bool);
    #[async_trait]
    impl EventPublisher for Recorder {
        async fn publish(&self, _topic: &str, events: &[PendingEvent]) -> Result<(), PublishError> {
            if self.1 {
                return Err(PublishError::Transient("broker down".into()));
            }
            self.0
                .lock()
                .unwrap()
                .extend(events.iter().map(|e| e.event_id.clone()));
            Ok(())
        }
    }
    {
        let s = &b.stores;
        pending_topics(s, "drain").await;
        let t = tag();
        for i in 0..3 {
            let p = Profile {
                user_id: user(&t, i),
                display_name: DisplayName::parse("D").unwrap(),
                registered_at: Utc::now(),
            };
            s.users
                .register(&p, &event(EventType::UserRegistered, &format!("{t}-{i}")))
                .await
                .unwrap();
        }
        let failing = Arc::new(Recorder(Mutex::new(Vec::new()), true));
        let d = Dispatcher::new(s.events.clone(), failing, Arc::new(SystemClock));
        let out = d.dispatch_once().await.unwrap();
        assert_eq!((out.published, out.failed), (0, 3));
        assert_eq!(
            s.events.pending_count().await.unwrap(),
            3,
            "{}: failures stay pending",
            b.name
        );

        let ok = Arc::new(Recorder(Mutex::new(Vec::new()), false));
        let d = Dispatcher::new(s.events.clone(), ok.clone(), Arc::new(SystemClock));
        assert_eq!(
            d.drain().await.unwrap().published,
            0,
            "failed rows wait for their retry time"
        );
        let claimed = s
            .events
            .claim_pending(
                "fast-forward",
                10,
                Duration::from_secs(1),
                Utc::now() + ChronoDuration::seconds(5),
            )
            .await
            .unwrap();
        s.events
            .release("fast-forward", claimed[0].seq, "x", Utc::now())
            .await
            .unwrap();
        for e in &claimed[1..] {
            s.events
                .release("fast-forward", e.seq, "x", Utc::now())
                .await
                .unwrap();
        }
        let out = d.drain().await.unwrap();
        assert_eq!(out.published, 3, "{}", b.name);
        assert_eq!(d.drain().await.unwrap().published, 0, "nothing twice");
        assert_eq!(ok.0.lock().unwrap().len(), 3);
    }
}

async fn one_report_per_user_per_question_newest_first(b: Backend) {
    {
        let s = &b.stores;
        let day = unique_day();
        let q = quiz(day);
        s.quiz
            .insert_quiz(&q, &event(EventType::DailyQuizGenerated, "q"))
            .await
            .unwrap();
        let t = tag();
        let report = |i: usize, secs: i64| QuestionReport {
            day,
            question_id: q.questions[0].id.clone(),
            user_id: user(&t, i),
            reason: format!("looks wrong {i}"),
            created_at: Utc::now() + ChronoDuration::seconds(secs + 3_000_000_000),
        };
        assert_eq!(
            s.quiz.insert_report(&report(1, 0)).await.unwrap(),
            Inserted::Yes
        );
        assert_eq!(
            s.quiz.insert_report(&report(1, 5)).await.unwrap(),
            Inserted::AlreadyExists,
            "{}",
            b.name
        );
        assert_eq!(
            s.quiz.insert_report(&report(2, 10)).await.unwrap(),
            Inserted::Yes
        );
        let listed = s.quiz.reports(2, 0).await.unwrap();
        assert_eq!(
            listed.iter().map(|r| r.user_id.clone()).collect::<Vec<_>>(),
            vec![user(&t, 2), user(&t, 1)],
            "{}: newest first",
            b.name
        );
        assert_eq!(listed[1].reason, "looks wrong 1");
    }
}

/// A batch of attempt events in one transaction: duplicates inside the batch and events
/// applied before count once, a second attempt for a day is refused by itself (leaving no inbox
/// row) without failing the others, and redelivering the batch changes nothing. The boards
/// then hold exactly what the events applied one by one would give.
async fn batches_of_attempts_apply_each_event_once_and_refuse_only_second_attempts(b: Backend) {
    let lb = &b.stores.leaderboard;
    let t = tag();
    let day = unique_day();
    let next = QuizDay::from_date(day.date() + chrono::Days::new(1)).unwrap();
    let key = |i: usize| InboxKey {
        consumer: "contract.batch",
        event_id: format!("{t}-{i}"),
    };
    let at = |u: usize, d: QuizDay, score: u32| ScoredAttempt {
        user_id: user(&t, u),
        display_name: format!("B{u}"),
        day: d,
        score,
    };
    use AttemptApplied::{Applied as A, Refused};
    // Event 2 was applied before the batch arrives (an earlier, single delivery).
    assert_eq!(
        lb.apply_attempt(&key(2), &at(2, day, 30), Utc::now())
            .await
            .unwrap(),
        A(Applied::Now)
    );
    let first = vec![
        (key(0), at(0, day, 50)),
        (key(1), at(1, day, 30)),
        (key(0), at(0, day, 50)), // the same event twice in one batch
        (key(2), at(2, day, 30)), // applied before
        (key(3), at(0, day, 40)), // a second attempt by player 0 for the same day
        (key(4), at(3, day, 10)),
    ];
    let got = lb.apply_attempts(&first, Utc::now()).await.unwrap();
    assert_eq!(got.len(), first.len(), "{}", b.name);
    assert_eq!(
        got.iter()
            .map(|o| matches!(o, Refused(_)))
            .collect::<Vec<_>>(),
        [false, false, false, false, true, false],
        "{}: {got:?}",
        b.name
    );
    assert_eq!(
        got.iter().filter(|o| **o == A(Applied::Now)).count(),
        3,
        "{}: {got:?}",
        b.name
    );
    assert_eq!(
        (&got[2], &got[3]),
        (&A(Applied::AlreadyProcessed), &A(Applied::AlreadyProcessed)),
        "{}",
        b.name
    );

    // Redelivered whole, plus new events (one for the next day).
    let mut second = first.clone();
    second.push((key(5), at(4, day, 0)));
    second.push((key(6), at(0, next, 20)));
    let got = lb.apply_attempts(&second, Utc::now()).await.unwrap();
    let now = got.iter().filter(|o| **o == A(Applied::Now)).count();
    assert_eq!(now, 2, "{}: only the new events apply: {got:?}", b.name);
    assert!(
        matches!(got[4], Refused(_)),
        "{}: the second attempt is refused again",
        b.name
    );

    let daily = Period::Daily(day).key();
    assert_eq!(
        lb.histogram(&daily).await.unwrap(),
        Some(vec![(50, 1), (30, 2), (10, 1), (0, 1)]),
        "{}: exact daily totals",
        b.name
    );
    assert_eq!(lb.player_count(&daily).await.unwrap(), 5, "{}", b.name);
    let ranks: Vec<(u64, u32)> = lb
        .top(&daily, 10, 0)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.rank, r.row.score))
        .collect();
    assert_eq!(
        ranks,
        vec![(1, 50), (2, 30), (2, 30), (4, 10), (5, 0)],
        "{}",
        b.name
    );
    let all = lb
        .standing(&Period::AllTime.key(), &user(&t, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (all.score, all.quizzes),
        (70, 2),
        "{}: all-time adds both days",
        b.name
    );
    let stats = lb.player_stats(&user(&t, 0)).await.unwrap().unwrap();
    assert_eq!(
        (
            stats.quizzes_played,
            stats.total_score,
            stats.streak.current
        ),
        (2, 70, 2),
        "{}",
        b.name
    );
    assert_eq!(
        lb.score(&Period::Daily(next).key(), &user(&t, 0))
            .await
            .unwrap(),
        Some((20, 1))
    );

    // The refused event left no inbox row: its key is free for an event that is valid.
    let got = lb
        .apply_attempts(&[(key(3), at(3, next, 5))], Utc::now())
        .await
        .unwrap();
    assert_eq!(got, vec![A(Applied::Now)], "{}", b.name);
}

contract![
    users_register_once_with_their_event,
    quizzes_are_unique_per_day_and_replaceable_only_before_attempts,
    attempts_round_trip_and_list_newest_first,
    fifty_parallel_duplicate_attempts_store_one,
    leaderboard_effects_apply_once_and_rank_with_ties,
    concurrent_redelivery_of_one_event_has_one_effect,
    outbox_claims_are_leases_and_two_dispatchers_get_disjoint_rows,
    poison_messages_are_kept_with_their_reason,
    outbox_status_counts_and_a_restarted_owner_reclaims_its_leases,
    one_report_per_user_per_question_newest_first,
    the_dispatcher_publishes_each_event_once_and_keeps_failures_pending,
    batches_of_attempts_apply_each_event_once_and_refuse_only_second_attempts,
];
