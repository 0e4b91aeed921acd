//! openraft's own storage test suite, run against this crate's sled stores for any
//! [`Machine`]: each application proves its store meets openraft's storage contract with one
//! call to [`run_storage_suite`].

use crate::group::open_stores;
use crate::state::StateMachineStore;
use crate::types::{Machine, StorageError, Types};
use crate::LogStore;
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageIOError;
use std::sync::Arc;
use tempfile::TempDir;

struct SledStoreBuilder<F> {
    make_machine: F,
}

impl<M, F> StoreBuilder<Types<M>, LogStore<M>, StateMachineStore<M>, TempDir>
    for SledStoreBuilder<F>
where
    M: Machine,
    F: Fn() -> M + Send + Sync,
{
    async fn build(&self) -> Result<(TempDir, LogStore<M>, StateMachineStore<M>), StorageError> {
        let dir = tempfile::tempdir().map_err(|err| StorageIOError::write(&err))?;
        let (log, state_machine) = open_stores(dir.path(), Arc::new((self.make_machine)()))
            .await
            .map_err(|err| StorageIOError::write(&std::io::Error::other(err.to_string())))?;
        Ok((dir, log, state_machine))
    }
}

/// Runs openraft's storage suite against fresh stores (each case in a fresh temporary folder)
/// whose machine `make_machine` builds. Call it from a plain `#[test]` (it makes its own
/// runtime).
pub fn run_storage_suite<M, F>(make_machine: F) -> Result<(), String>
where
    M: Machine,
    F: Fn() -> M + Send + Sync + 'static,
{
    Suite::test_all(SledStoreBuilder { make_machine }).map_err(|err| err.to_string())
}
