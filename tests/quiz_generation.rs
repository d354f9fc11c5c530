//! Quiz generation under concurrency, through the real `QuizService` and SQLite store: many
//! requests for a missing quiz start one generation, and the day ends with one quiz.

use async_trait::async_trait;
use qotd::kernel::QuizDay;
use qotd::platform::clock::SystemClock;
use qotd::platform::store::{self, DatabaseUrl};
use qotd::quiz::bank::BankGenerator;
use qotd::quiz::{Generated, Generation, QuizGenerator, QuizService, RecentQuestions};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The bank, slowly, counting calls (stands in for a slow remote generator).
struct SlowCounting {
    calls: AtomicUsize,
    inner: BankGenerator,
}

#[async_trait]
impl QuizGenerator for SlowCounting {
    async fn generate(&self, day: QuizDay, recent: &RecentQuestions) -> Result<Generated, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.inner.generate(day, recent).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_a_missing_quiz_generate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let stores = store::open(&DatabaseUrl::Sqlite(dir.path().join("q.db")))
        .await
        .unwrap();
    let generator = Arc::new(SlowCounting {
        calls: AtomicUsize::new(0),
        inner: BankGenerator::embedded(),
    });
    let service = Arc::new(QuizService::new(
        qotd::quiz::store::repo(&stores),
        generator.clone(),
        Arc::new(SystemClock),
    ));
    let day = service.today();
    let requests = (0..20).map(|_| {
        let service = service.clone();
        tokio::spawn(async move { service.quiz_or_today(day, None).await.unwrap() })
    });
    let quizzes: Vec<_> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        generator.calls.load(Ordering::SeqCst),
        1,
        "one generation for twenty requests"
    );
    assert!(
        quizzes.windows(2).all(|w| w[0].questions == w[1].questions),
        "everyone sees the same quiz"
    );
    assert!(matches!(
        service.ensure_generated(day, None).await.unwrap(),
        Generation::Existed(_)
    ));
    assert_eq!(generator.calls.load(Ordering::SeqCst), 1);
}
