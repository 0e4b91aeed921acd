//! Replica placement: 3 replicas on 3 distinct racks, least-loaded nodes first. With only 2
//! healthy racks, 3 replicas on 2 racks (2 on one rack, on distinct nodes): see the crate docs.

use std::collections::{BTreeMap, HashMap};
use strata_proto::common::NodeAddr;

/// Replicas per extent, each on its own rack when 3 racks are healthy.
pub const REPLICAS: usize = 3;
/// Fewest healthy racks a new extent is placed on (2: writes go on after a rack loss).
pub const RACKS_MIN: usize = 2;

/// Most replicas of one extent on one rack, given how many racks are healthy.
pub fn per_rack_max(healthy_racks: usize) -> usize {
    if healthy_racks >= REPLICAS {
        1
    } else {
        REPLICAS - 1
    }
}

/// The ranked racks' nodes in the order the allocator tries them: the first node of every
/// rack, then the second of every rack, and so on.
pub fn placement_order(racks: Vec<Vec<Candidate>>) -> Vec<Candidate> {
    let depth = racks.iter().map(Vec::len).max().unwrap_or(0);
    let mut order = Vec::new();
    for round in 0..depth {
        for rack in &racks {
            if let Some(candidate) = rack.get(round) {
                order.push(candidate.clone());
            }
        }
    }
    order
}

/// Where to put one more replica of an extent whose other replicas sit on `kept_racks`:
/// a candidate (healthy, not holding the extent) on a rack holding none, least loaded first;
/// else, unless `new_rack_only`, on the rack holding fewest (at most 2 per rack).
pub fn pick_target(
    candidates: &[Candidate],
    kept_racks: &[String],
    new_rack_only: bool,
) -> Option<NodeAddr> {
    let mut on_rack: HashMap<&str, usize> = HashMap::new();
    for rack in kept_racks {
        *on_rack.entry(rack.as_str()).or_default() += 1;
    }
    candidates
        .iter()
        .map(|c| (on_rack.get(c.node.rack.as_str()).copied().unwrap_or(0), c))
        .filter(|(count, _)| {
            if new_rack_only {
                *count == 0
            } else {
                *count < REPLICAS - 1
            }
        })
        .min_by(|(a_count, a), (b_count, b)| {
            a_count
                .cmp(b_count)
                .then_with(|| a.extents.cmp(&b.extents))
                .then_with(|| a.node.node_id.cmp(&b.node.node_id))
        })
        .map(|(_, c)| c.node.clone())
}

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

    #[test]
    fn two_racks_take_three_replicas_on_distinct_nodes() {
        let ranked = rank_racks(vec![
            candidate("a1", "a", 0),
            candidate("a2", "a", 1),
            candidate("b1", "b", 0),
            candidate("b2", "b", 2),
        ]);
        let order: Vec<String> = placement_order(ranked)
            .into_iter()
            .map(|c| c.node.node_id)
            .collect();
        assert_eq!(order, vec!["a1", "b1", "a2", "b2"]);
        assert_eq!(per_rack_max(2), 2);
        assert_eq!(per_rack_max(3), 1);
    }

    #[test]
    fn targets_prefer_a_rack_without_replicas() {
        let candidates = vec![
            candidate("a2", "a", 0),
            candidate("c1", "c", 7),
            candidate("b2", "b", 0),
        ];
        let kept = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            pick_target(&candidates, &kept, false).unwrap().node_id,
            "c1"
        );
        let without_c = &candidates[..1];
        assert_eq!(pick_target(without_c, &kept, false).unwrap().node_id, "a2");
        assert!(pick_target(without_c, &kept, true).is_none());
    }
}
