//! Proves the partition map machine on `strata_raft`'s sled stores meets openraft's storage
//! contract (openraft's own storage suite, each case in a fresh temporary folder), and that a
//! reopened store has its applied map back.

use std::sync::Arc;
use strata_manager::{Command, PartitionMachine};
use strata_raft::Machine;
use strata_types::RangeId;

#[test]
fn partition_map_store_passes_the_openraft_storage_suite() {
    strata_raft::testing::run_storage_suite(PartitionMachine::default).unwrap();
}

/// A reopened store still has its vote and applied map (what a restarted member needs).
#[test]
fn partition_map_store_survives_reopening() {
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
    use strata_raft::Types;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let entry = Entry::<Types<PartitionMachine>> {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Normal(Command::CreateInitialRange {
                range_id: RangeId::new(1),
                low: vec![],
                high: vec![],
            }),
        };
        {
            let machine = Arc::new(PartitionMachine::default());
            let (mut log, mut state_machine) = strata_raft::group::open_stores(dir.path(), machine)
                .await
                .unwrap();
            log.save_vote(&Vote::new(1, 1)).await.unwrap();
            state_machine.apply([entry.clone()]).await.unwrap();
        }
        let machine = Arc::new(PartitionMachine::default());
        let (mut log, state_machine) = strata_raft::group::open_stores(dir.path(), machine.clone())
            .await
            .unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(1, 1)));
        assert_eq!(
            state_machine.reader().applied().unwrap(),
            Some(entry.log_id)
        );
        let map = machine.map();
        assert_eq!(map.ranges.len(), 1);
        assert_eq!(map.version, 1);
        let _ = PartitionMachine::no_change();
    });
}
