//! What a node is, as its certificate names it: the caller identity that internal gRPC
//! services check (issue 14). The text form is the one inside the certificate's SAN URI
//! `strata://<stamp>/<role>/<node-name>`, so it is a persisted format: never rename a variant's
//! text.

use std::fmt;
use std::str::FromStr;

/// The role a certificate grants its holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    ExtentNode,
    StreamManager,
    PartitionServer,
    PartitionManager,
    Location,
    Frontend,
    /// A person's tools: `strata status`, `strata debug ...`.
    Operator,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 7] = [
        Role::ExtentNode,
        Role::StreamManager,
        Role::PartitionServer,
        Role::PartitionManager,
        Role::Location,
        Role::Frontend,
        Role::Operator,
    ];

    /// The role's name in certificates and error details.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ExtentNode => "extent-node",
            Role::StreamManager => "stream-manager",
            Role::PartitionServer => "partition-server",
            Role::PartitionManager => "partition-manager",
            Role::Location => "location",
            Role::Frontend => "frontend",
            Role::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no role.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| UnknownRole(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!("root".parse::<Role>(), Err(UnknownRole("root".to_string())));
        assert_eq!(Role::PartitionServer.to_string(), "partition-server");
    }
}
