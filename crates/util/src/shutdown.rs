//! Graceful shutdown as a tree (mini-redis `shutdown.rs`, Neon `gate.rs`).
//!
//! The root [`Shutdown`] owns a cancellation token and a task tracker. Components take a child
//! token, spawn their tasks on the tracker, and stop when the token is cancelled; `main` waits
//! for every tracked task before it exits.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token cancelled when the node shuts down.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Spawns a task the node waits for on shutdown.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Cancels the tree.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Cancels the tree when SIGINT or SIGTERM arrives.
    pub fn trigger_on_signals(&self) {
        let token = self.token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            token.cancel();
        });
    }

    /// Waits for cancellation, then for every tracked task, at most `grace` long.
    pub async fn wait(&self, grace: Duration) {
        self.token.cancelled().await;
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "tasks still running after the shutdown grace period"
            );
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
