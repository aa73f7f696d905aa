//! The daemon's tasks by name, and the one stop signal they all follow.
//!
//! [`Tasks::spawn`] names a task while it runs; [`Tasks::wait`] waits, up
//! to a deadline, until none runs and says which did not stop. [`Stop`] is
//! a `watch` channel that turns true once: every long-lived task selects on
//! it (the owner task, the unit watch, the rollback runner, running
//! rollbacks).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long `run()` waits for its tasks once it has signalled the stop.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// The stop signal as a task sees it: wait with [`Stop::stopped`].
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A stop signal and the sender that raises it (`send(true)`, or its
    /// drop).
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Returns once the daemon is stopping (at once if it is already).
    pub async fn stopped(&mut self) {
        // A dropped sender stops as well.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// The receiver, for a task that selects on `changed()` itself.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }
}

/// The names of the tasks that run, by spawn order.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    running: Arc<watch::Sender<BTreeMap<u64, String>>>,
    next: Arc<AtomicU64>,
}

/// Removes its task's name when the task ends, however it ends.
struct Running {
    running: Arc<watch::Sender<BTreeMap<u64, String>>>,
    id: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.running.send_modify(|m| {
            m.remove(&self.id);
        });
    }
}

impl Tasks {
    /// Spawns `task`, known as `name` until it ends.
    pub fn spawn<F>(&self, name: impl Into<String>, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let name = name.into();
        self.running.send_modify(|m| {
            m.insert(id, name);
        });
        let guard = Running {
            running: self.running.clone(),
            id,
        };
        tokio::spawn(async move {
            let _guard = guard;
            task.await
        })
    }

    /// The names of the tasks running now.
    pub fn running(&self) -> Vec<String> {
        self.running.borrow().values().cloned().collect()
    }

    /// Waits until no task runs, or for `limit`.
    ///
    /// # Errors
    /// The names of the tasks still running at the limit.
    pub async fn wait(&self, limit: Duration) -> Result<(), Vec<String>> {
        let mut rx = self.running.subscribe();
        match tokio::time::timeout(limit, rx.wait_for(BTreeMap::is_empty)).await {
            Ok(_) => Ok(()),
            Err(_) => Err(self.running()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_names_what_did_not_stop() {
        let tasks = Tasks::default();
        let (stop_tx, stop) = Stop::new();
        let mut s = stop.clone();
        tasks.spawn("follows the stop", async move { s.stopped().await });
        let hung = tasks.spawn("hangs", std::future::pending::<()>());
        assert_eq!(tasks.running(), ["follows the stop", "hangs"]);
        stop_tx.send(true).unwrap();
        assert!(*stop.receiver().borrow());
        let left = tasks.wait(Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(left, ["hangs"]);
        hung.abort();
        tasks.wait(Duration::from_secs(10)).await.unwrap();
        assert!(tasks.running().is_empty());
    }
}
