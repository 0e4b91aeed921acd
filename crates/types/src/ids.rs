//! Typed ids. Each wraps its raw value and converts only explicitly.
//!
//! Every id is `#[serde(transparent)]`: it is stored exactly as its raw value, so records
//! written before the id was typed (Raft logs, snapshots, sled) load unchanged.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

numeric_id!(
    /// One extent: an append-only file replicated on 3 extent nodes.
    ExtentId,
    "extent-"
);
numeric_id!(
    /// One range partition `[low, high)` of the key space.
    RangeId,
    "range-"
);
numeric_id!(
    /// A member of a Raft group.
    NodeId,
    "member-"
);

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(raw: impl Into<String>) -> Self {
                Self(raw.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A partition server's stable name (kept in its data folder across restarts).
    ServerId
);

/// Fencing number of a range assignment. A range is served under exactly one epoch at a time;
/// every change of owner bumps it. Compared only where fencing is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(u64);

impl Epoch {
    pub const ZERO: Epoch = Epoch(0);

    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }
    pub const fn get(self) -> u64 {
        self.0
    }
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_with_their_kind() {
        assert_eq!(ExtentId::new(7).to_string(), "extent-7");
        assert_eq!(RangeId::new(1).to_string(), "range-1");
        assert_eq!(Epoch::new(3).next(), Epoch::new(4));
    }

    #[test]
    fn ids_serialize_as_their_raw_value() {
        // Records written with bare integers and strings must load into typed ids.
        let ids = vec![ExtentId::new(7), ExtentId::new(u64::MAX)];
        let json = serde_json::to_vec(&ids).unwrap();
        assert_eq!(json, serde_json::to_vec(&vec![7u64, u64::MAX]).unwrap());
        assert_eq!(serde_json::from_slice::<Vec<ExtentId>>(&json).unwrap(), ids);
        assert_eq!(serde_json::to_string(&NodeId::new(3)).unwrap(), "3");
        assert_eq!(serde_json::to_string(&Epoch::new(9)).unwrap(), "9");
        assert_eq!(
            serde_json::to_string(&ServerId::new("ps-1")).unwrap(),
            "\"ps-1\""
        );
    }
}
