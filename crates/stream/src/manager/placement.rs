//! Replica placement: 3 replicas on 3 distinct racks, least-loaded nodes first.

use std::collections::BTreeMap;
use strata_proto::common::NodeAddr;

/// Replicas per extent, each on its own rack.
pub const REPLICAS: usize = 3;

/// A healthy node and how many extent replicas it already holds.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub node: NodeAddr,
    pub extents: usize,
}

/// Orders the candidates for placement: racks by their least-loaded node, and within a rack
/// nodes by load (ties by node id, so placement is deterministic). The allocator takes the
/// first node of the first 3 racks and, when one fails, the next node of that rack, then of
/// the following racks.
pub fn rank_racks(candidates: Vec<Candidate>) -> Vec<Vec<Candidate>> {
    let mut by_rack: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for candidate in candidates {
        by_rack
            .entry(candidate.node.rack.clone())
            .or_default()
            .push(candidate);
    }
    let mut racks: Vec<Vec<Candidate>> = by_rack
        .into_values()
        .map(|mut nodes| {
            nodes.sort_by(|a, b| {
                a.extents
                    .cmp(&b.extents)
                    .then_with(|| a.node.node_id.cmp(&b.node.node_id))
            });
            nodes
        })
        .collect();
    racks.sort_by(|a, b| {
        let load = |rack: &Vec<Candidate>| rack.first().map(|c| c.extents).unwrap_or(usize::MAX);
        let rack_name = |rack: &Vec<Candidate>| {
            rack.first()
                .map(|c| c.node.rack.clone())
                .unwrap_or_default()
        };
        load(a)
            .cmp(&load(b))
            .then_with(|| rack_name(a).cmp(&rack_name(b)))
    });
    racks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, rack: &str, extents: usize) -> Candidate {
        Candidate {
            node: NodeAddr {
                node_id: id.into(),
                addr: format!("{id}:1"),
                rack: rack.into(),
            },
            extents,
        }
    }

    #[test]
    fn racks_are_distinct_and_least_loaded_first() {
        let ranked = rank_racks(vec![
            candidate("a1", "a", 5),
            candidate("a2", "a", 1),
            candidate("b1", "b", 0),
            candidate("c1", "c", 9),
            candidate("d1", "d", 3),
        ]);
        let firsts: Vec<&str> = ranked
            .iter()
            .take(REPLICAS)
            .map(|r| r[0].node.node_id.as_str())
            .collect();
        assert_eq!(firsts, vec!["b1", "a2", "d1"]);
        let racks: std::collections::HashSet<&str> = ranked
            .iter()
            .take(REPLICAS)
            .map(|r| r[0].node.rack.as_str())
            .collect();
        assert_eq!(racks.len(), REPLICAS);
    }
}
