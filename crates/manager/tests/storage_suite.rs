//! Proves the sled log store and state machine meet openraft's storage contract, by running
//! openraft's own storage test suite against them (each case in a fresh temporary folder).

use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};
use strata_manager::store::{self, LogStore, StateMachineStore};
use strata_manager::TypeConfig;
use tempfile::TempDir;

struct SledStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for SledStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|err| StorageIOError::write(&err))?;
        let (log, state_machine) = store::open(dir.path())
            .await
            .map_err(|err| StorageIOError::write(&err))?;
        Ok((dir, log, state_machine))
    }
}

#[test]
fn sled_store_passes_the_openraft_storage_suite() {
    if let Err(err) = Suite::test_all(SledStoreBuilder) {
        panic!("openraft storage suite failed: {err}");
    }
}

/// A reopened store still has its vote and applied map (what a restarted member needs).
#[test]
fn sled_store_survives_reopening() {
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
    use strata_manager::Command;
    use strata_types::RangeId;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let entry = Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Normal(Command::CreateInitialRange {
                range_id: RangeId::new(1),
                low: vec![],
                high: vec![],
            }),
        };
        {
            let (mut log, mut state_machine) = store::open(dir.path()).await.unwrap();
            log.save_vote(&Vote::new(1, 1)).await.unwrap();
            state_machine.apply([entry.clone()]).await.unwrap();
        }
        let (mut log, state_machine) = store::open(dir.path()).await.unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(1, 1)));
        let applied = state_machine.snapshot_of_state();
        assert_eq!(applied.last_applied, Some(entry.log_id));
        assert_eq!(applied.map.ranges.len(), 1);
        assert_eq!(applied.map.version, 1);
    });
}
