//! Group commit for small independent writes (an attempt and its event, a registration).
//!
//! Every SQLite commit writes the changed pages to the WAL; with one transaction per request the
//! same hot pages (the table's last leaf, its indexes, the outbox) were written once per
//! request, and the commit was the largest cost of `POST /api/quizzes/{date}/attempts`
//! (profiled with `perf`, see BENCHMARKS.md). Here writes that arrive while another group is
//! committing wait in a queue; the next leader takes them all and runs them in **one**
//! `BEGIN IMMEDIATE … COMMIT`, each inside its own savepoint:
//!
//! - a job that fails is rolled back to its savepoint alone: the others keep their effects;
//! - every job learns its result only **after** the group's COMMIT succeeded, so nothing is
//!   acknowledged that is not durable (as durable as `synchronous=NORMAL` makes any commit);
//! - if BEGIN or COMMIT fails, every job in the group gets that error and nothing was written.
//!
//! The leader is whichever caller finds no leader running; it runs on a blocking thread with
//! the single writer connection (the same mutex `Sqlite::write` takes, so grouped and
//! exclusive writes never interleave).

use super::db;
use crate::platform::store::StoreError;
use rusqlite::Connection;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// Most jobs in one transaction: keeps a group's commit (and its callers' wait) short.
pub const MAX_GROUP: usize = 256;

/// One queued write: runs inside the group's transaction, then hears how the group ended.
trait Job: Send {
    /// Runs the write inside a savepoint of `conn`'s open transaction.
    fn run(&mut self, conn: &mut Connection);
    /// Delivers the result: the job's own, or the group's failure to begin or commit.
    fn finish(self: Box<Self>, group: Result<(), &StoreError>);
}

struct Queued<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Queued<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &mut Connection) {
        let Some(work) = self.work.take() else {
            return;
        };
        let result = match conn.savepoint() {
            Err(e) => Err(db(e)),
            // A panicking write fails alone, like an error: it must not take the leader (and
            // with it the open transaction and every queued caller) down.
            Ok(sp) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&sp))) {
                // Dropping an uncommitted savepoint rolls it back.
                Ok(Ok(v)) => sp.commit().map(|()| v).map_err(db),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(StoreError::Corrupt("a grouped write panicked".into())),
            },
        };
        self.result = Some(result);
    }

    fn finish(self: Box<Self>, group: Result<(), &StoreError>) {
        let result = match (group, self.result) {
            (Err(e), _) => Err(e.clone()),
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(StoreError::Corrupt("a grouped write never ran".into())),
        };
        // The caller may have gone away (request cancelled): its write stands, as any commit.
        let _ = self.reply.send(result);
    }
}

/// A check run before each group's BEGIN (the engine's file identity check).
type Precheck = Box<dyn Fn() -> Result<(), StoreError> + Send + Sync>;

/// The writes waiting for the next group, and whether a leader is running (one lock for both,
/// so a caller can never queue behind a leader that is stepping down).
#[derive(Default)]
struct Queue {
    jobs: Vec<Box<dyn Job>>,
    leading: bool,
}

pub struct GroupCommit {
    queue: Mutex<Queue>,
    before: Precheck,
}

impl GroupCommit {
    /// `before` runs on the leader before each group's BEGIN; its error fails the group.
    pub fn new(before: impl Fn() -> Result<(), StoreError> + Send + Sync + 'static) -> Self {
        Self {
            queue: Mutex::default(),
            before: Box::new(before),
        }
    }

    /// Queues `work` for the next group; returns its result once that group has committed.
    pub async fn write<T, F>(
        self: &Arc<Self>,
        writer: &Arc<Mutex<Connection>>,
        work: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.jobs.push(Box::new(Queued {
                work: Some(work),
                result: None,
                reply,
            }));
            !std::mem::replace(&mut queue.leading, true)
        };
        if lead {
            let (this, writer) = (self.clone(), writer.clone());
            // Not awaited: the leader serves every queued caller, each waits on its answer.
            tokio::task::spawn_blocking(move || this.lead(&writer));
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the database writer stopped before answering".into(),
            ))
        })
    }

    /// Runs groups until the queue is empty, then steps down.
    fn lead(&self, writer: &Mutex<Connection>) {
        loop {
            let mut conn = writer.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(group) = self.take() else {
                return;
            };
            run_group(&mut conn, group, &self.before);
        }
    }

    /// The next group, or `None` (and the leader steps down, under the same lock) when
    /// nothing is queued.
    fn take(&self) -> Option<Vec<Box<dyn Job>>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.jobs.is_empty() {
            queue.leading = false;
            return None;
        }
        let n = queue.jobs.len().min(MAX_GROUP);
        Some(queue.jobs.drain(..n).collect())
    }
}

fn run_group(conn: &mut Connection, mut group: Vec<Box<dyn Job>>, before: &Precheck) {
    let began = before().and_then(|()| {
        // IMMEDIATE, as every write here: take the write lock up front (no upgrade deadlocks
        // with `qotd` commands writing beside the server).
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db)
    });
    if let Err(e) = began {
        for job in group {
            job.finish(Err(&e));
        }
        return;
    }
    for job in &mut group {
        job.run(conn);
    }
    match conn.execute_batch("COMMIT").map_err(db) {
        Ok(()) => {
            for job in group {
                job.finish(Ok(()));
            }
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            for job in group {
                job.finish(Err(&e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn db_with_table() -> Arc<Mutex<Connection>> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .unwrap();
        Arc::new(Mutex::new(conn))
    }

    fn insert(k: &'static str) -> impl FnOnce(&Connection) -> Result<usize, StoreError> {
        move |c: &Connection| c.execute("INSERT INTO t (k) VALUES (?1)", [k]).map_err(db)
    }

    fn keys(conn: &Arc<Mutex<Connection>>) -> Vec<String> {
        let c = conn.lock().unwrap();
        let mut st = c.prepare("SELECT k FROM t ORDER BY k").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_land_and_a_failing_one_leaves_no_trace() {
        let conn = db_with_table();
        let group = Arc::new(GroupCommit::new(|| Ok(())));
        let writes = (0..200).map(|i| {
            let (group, conn) = (group.clone(), conn.clone());
            async move {
                let key: &'static str = Box::leak(format!("k{i:03}").into_boxed_str());
                group.write(&conn, insert(key)).await
            }
        });
        let results = futures_util::future::join_all(writes).await;
        assert!(results.iter().all(|r| matches!(r, Ok(1))), "{results:?}");
        // A duplicate fails alone; its neighbours in the same group commit.
        let (a, dup, b) = tokio::join!(
            group.write(&conn, insert("x1")),
            group.write(&conn, |c: &Connection| {
                c.execute("INSERT INTO t (k) VALUES ('x2')", [])
                    .map_err(db)?;
                c.execute("INSERT INTO t (k) VALUES ('k000')", [])
                    .map_err(db)
            }),
            group.write(&conn, insert("x3")),
        );
        assert!(a.is_ok() && b.is_ok());
        assert!(matches!(dup, Err(StoreError::Refused(_))), "{dup:?}");
        let all = keys(&conn);
        assert_eq!(all.len(), 202);
        assert!(
            !all.contains(&"x2".to_owned()),
            "the failed job's first insert is rolled back"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_write_fails_alone_and_the_writer_keeps_working() {
        let conn = db_with_table();
        let group = Arc::new(GroupCommit::new(|| Ok(())));
        let (a, boom, b) = tokio::join!(
            group.write(&conn, insert("a")),
            group.write(&conn, |c: &Connection| -> Result<usize, StoreError> {
                c.execute("INSERT INTO t (k) VALUES ('half')", [])
                    .map_err(db)?;
                panic!("a bug inside a write")
            }),
            group.write(&conn, insert("b")),
        );
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert!(matches!(boom, Err(StoreError::Corrupt(_))), "{boom:?}");
        // No transaction was left open and a leader still answers.
        group.write(&conn, insert("c")).await.unwrap();
        assert_eq!(keys(&conn), ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_group_that_cannot_begin_fails_every_job_and_writes_nothing() {
        let conn = db_with_table();
        let gone = Arc::new(AtomicBool::new(true));
        let check = gone.clone();
        let group = Arc::new(GroupCommit::new(move || {
            if check.load(Ordering::SeqCst) {
                Err(StoreError::Unavailable("file is gone".into()))
            } else {
                Ok(())
            }
        }));
        let (a, b) = tokio::join!(
            group.write(&conn, insert("a")),
            group.write(&conn, insert("b"))
        );
        for r in [a, b] {
            assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        }
        assert!(keys(&conn).is_empty());
        // Once the check passes again, writes land.
        gone.store(false, Ordering::SeqCst);
        group.write(&conn, insert("c")).await.unwrap();
        assert_eq!(keys(&conn), ["c"]);
    }
}
