//! Durable storage of one member, in one sled database: the Raft log ([`LogStore`]) and the
//! state machine ([`StateMachineStore`]). Every value is a versioned, checksummed record
//! ([`codec`]).

pub mod codec;
mod log;
mod state_machine;

pub use log::LogStore;
pub use state_machine::{read_state, AppliedState, SharedState, StateMachineStore};

use crate::error::ManagerError;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long opening waits for a previous instance in this process to release the database.
const OPEN_WAIT_MS: u64 = 5_000;

/// Opens (or creates) the member's database in `dir`. sled holds an exclusive lock on it; when a
/// previous instance in this process is still shutting down, this retries for a bounded time.
pub async fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), ManagerError> {
    std::fs::create_dir_all(dir)?;
    let deadline = Instant::now() + Duration::from_millis(OPEN_WAIT_MS);
    let db = loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => break db,
            Err(err) if Instant::now() < deadline => {
                tracing::debug!(%err, dir = %dir.display(), "sled database busy; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => {
                return Err(ManagerError::Storage(format!(
                    "opening {}: {err}",
                    dir.display()
                )));
            }
        }
    };
    Ok((LogStore::open(&db)?, StateMachineStore::open(&db)?))
}
