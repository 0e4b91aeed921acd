//! The partition map as the group's replicated state machine.
//!
//! The map is small, so it is one record (`partition_map`), rewritten by every command that
//! changes it; it is also kept decoded in memory for readers (heartbeats, map requests), set
//! as each committed command applies and rebuilt from the record on open and after a
//! snapshot is installed.

use crate::map::PartitionMapState;
use crate::types::{Command, CommandResponse};
use std::sync::RwLock;
use strata_raft::{GroupError, Machine, Overlay, StateReader};

const MAP_KEY: &[u8] = b"partition_map";

/// The partition map machine of one member.
#[derive(Default)]
pub struct PartitionMachine {
    map: RwLock<PartitionMapState>,
}

impl PartitionMachine {
    /// A copy of the map as last applied here.
    pub fn map(&self) -> PartitionMapState {
        match self.map.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, map: PartitionMapState) {
        match self.map.write() {
            Ok(mut guard) => *guard = map,
            Err(poisoned) => *poisoned.into_inner() = map,
        }
    }
}

impl Machine for PartitionMachine {
    type Command = Command;
    type Response = CommandResponse;

    fn no_change() -> CommandResponse {
        CommandResponse::NoChange
    }

    fn apply(
        &self,
        state: &mut Overlay<'_>,
        index: u64,
        command: &Command,
    ) -> Result<CommandResponse, GroupError> {
        let mut map: PartitionMapState = state.get_record(MAP_KEY)?.unwrap_or_default();
        let response = map.apply(command);
        match &response {
            CommandResponse::Rejected { reason } => {
                tracing::debug!(index, %reason, "command rejected");
            }
            applied => {
                tracing::info!(index, ?applied, "partition map changed");
                state.put_record(MAP_KEY, &map)?;
                self.set(map);
            }
        }
        Ok(response)
    }

    fn restore(&self, state: &StateReader) -> Result<(), GroupError> {
        self.set(state.get_record(MAP_KEY)?.unwrap_or_default());
        Ok(())
    }
}
