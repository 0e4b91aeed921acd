//! Deciding the next split, merge, move or renewal from the map and the ranges' load. Pure:
//! the leader's balancer ([`crate::reshape`]) carries the decision out, one at a time.
//!
//! - Split a range whose requests/s or bytes/s stayed over the limit for `split_sustain`, at
//!   the median of its sampled request keys (so the halves share the load, wherever in the
//!   key space it falls), or whose size passed a limit (at its middle key).
//! - Move a range from the busiest server to the idlest when that narrows the gap.
//! - Merge adjacent ranges that stayed cold for `merge_sustain` (moving one next to the other
//!   first when two servers serve them), unless the result would soon be split again.
//! - Renew a range frozen far longer than a reshape takes (its reshape was abandoned).
//!
//! A range is left alone for `cooldown` after it was created or changed owner, so one burst
//! of load cannot make it flap.

use crate::load::{balanced_split_key, LoadTable, RangeLoad};
use crate::map::{PartitionMapState, RangeRecord};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use strata_types::{Epoch, RangeId};

/// A balancing move must lower the busiest server's requests/s by this fraction at least.
const MOVE_GAIN_MIN: f64 = 0.25;

#[derive(Clone, Debug)]
pub struct PlannerConfig {
    /// Split when a range serves more than this many requests/s (0 = never on requests).
    pub split_requests_per_sec: f64,
    /// Split when a range moves more than this many body bytes/s (0 = never on bytes).
    pub split_bytes_per_sec: f64,
    /// ... sustained this long.
    pub split_sustain: Duration,
    /// Split when a range holds more keys than this, or more object bytes.
    pub split_keys_max: u64,
    pub split_size_bytes_max: u64,
    /// Merge neighbours that both serve fewer requests/s than this ...
    pub merge_requests_per_sec: f64,
    /// ... sustained this long.
    pub merge_sustain: Duration,
    /// Only ranges at least this busy are moved to balance servers.
    pub move_requests_per_sec_min: f64,
    /// A range is not reshaped or moved for this long after it was created or moved.
    pub cooldown: Duration,
    /// Renew a range frozen longer than this.
    pub frozen_renew_after: Duration,
    /// Load reports older than this are ignored.
    pub report_fresh: Duration,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            split_requests_per_sec: 250.0,
            split_bytes_per_sec: 64.0 * 1024.0 * 1024.0,
            split_sustain: Duration::from_secs(10),
            split_keys_max: 2_000_000,
            split_size_bytes_max: 64 * 1024 * 1024 * 1024,
            merge_requests_per_sec: 10.0,
            merge_sustain: Duration::from_secs(120),
            move_requests_per_sec_min: 50.0,
            cooldown: Duration::from_secs(10),
            frozen_renew_after: Duration::from_secs(15),
            report_fresh: Duration::from_secs(5),
        }
    }
}

impl PlannerConfig {
    pub fn thresholds(&self) -> crate::load::Thresholds {
        let never = |limit: f64| if limit > 0.0 { limit } else { f64::INFINITY };
        crate::load::Thresholds {
            split_requests_per_sec: never(self.split_requests_per_sec),
            split_bytes_per_sec: never(self.split_bytes_per_sec),
            merge_requests_per_sec: self.merge_requests_per_sec,
        }
    }
}

/// One change to carry out. Every one names the epochs it was decided on: the map rejects it
/// if anything changed meanwhile.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Renew {
        range_id: RangeId,
        epoch: Epoch,
        owner_id: String,
        owner_addr: String,
        why: String,
    },
    Split {
        range_id: RangeId,
        epoch: Epoch,
        owner_addr: String,
        split_key: Vec<u8>,
        why: String,
    },
    Move {
        range_id: RangeId,
        epoch: Epoch,
        to_id: String,
        to_addr: String,
        why: String,
    },
    Merge {
        left: (RangeId, Epoch),
        right: (RangeId, Epoch),
        owner_addr: String,
        why: String,
    },
}

struct View<'a> {
    map: &'a PartitionMapState,
    loads: &'a LoadTable,
    alive: &'a BTreeMap<String, String>,
    config: &'a PlannerConfig,
    now: Instant,
}

impl View<'_> {
    /// The fresh load of a range served by a live owner, past its cooldown or not.
    fn load(&self, range: &RangeRecord) -> Option<&RangeLoad> {
        let owner = range.owner.as_ref()?;
        if !self.alive.contains_key(owner.server_id.as_str()) {
            return None;
        }
        self.loads
            .get(
                range.range_id,
                range.epoch,
                self.config.report_fresh,
                self.now,
            )
            .filter(|load| load.server_id == owner.server_id.as_str())
    }

    fn cooled(&self, load: &RangeLoad) -> bool {
        self.now.saturating_duration_since(load.first_seen) >= self.config.cooldown
    }

    fn lasted(&self, since: Option<Instant>, wanted: Duration) -> bool {
        since.is_some_and(|since| self.now.saturating_duration_since(since) >= wanted)
    }
}

/// The next change, if any (see the module doc for the order).
pub fn next_action(
    map: &PartitionMapState,
    loads: &LoadTable,
    alive: &BTreeMap<String, String>,
    config: &PlannerConfig,
    now: Instant,
) -> Option<Action> {
    let view = View {
        map,
        loads,
        alive,
        config,
        now,
    };
    renewal(&view)
        .or_else(|| split(&view))
        .or_else(|| balance(&view))
        .or_else(|| merge(&view))
}

fn renewal(view: &View<'_>) -> Option<Action> {
    view.map.ranges.values().find_map(|range| {
        let load = view.load(range)?;
        let frozen = Duration::from_millis(load.report.frozen_for_ms);
        if frozen < view.config.frozen_renew_after {
            return None;
        }
        let owner = range.owner.as_ref()?;
        Some(Action::Renew {
            range_id: range.range_id,
            epoch: range.epoch,
            owner_id: owner.server_id.to_string(),
            owner_addr: owner.addr.clone(),
            why: format!(
                "frozen for {} ms: its reshape was abandoned",
                load.report.frozen_for_ms
            ),
        })
    })
}

fn split(view: &View<'_>) -> Option<Action> {
    let config = view.config;
    let mut best: Option<(f64, Action)> = None;
    for range in view.map.ranges.values() {
        let Some(load) = view.load(range).filter(|load| view.cooled(load)) else {
            continue;
        };
        let report = &load.report;
        let hot = view.lasted(load.hot_since, config.split_sustain);
        let big = report.keys >= config.split_keys_max.max(2)
            || report.size_bytes >= config.split_size_bytes_max.max(1);
        if !hot && !big {
            continue;
        }
        let inside = |key: &Vec<u8>| {
            key.as_slice() > range.low.as_slice()
                && (range.high.is_empty() || key.as_slice() < range.high.as_slice())
        };
        let from_sample = balanced_split_key(&report.sampled_keys, &range.low, &range.high);
        let split_key = match (hot, from_sample) {
            (_, Some(key)) => key,
            (false, None) if inside(&strata_types::keys::split_point(&report.middle_key)) => {
                strata_types::keys::split_point(&report.middle_key)
            }
            _ => continue, // one hot key: a split cannot spread it
        };
        let why = if hot {
            format!(
                "{:.0} requests/s, {:.0} bytes/s for {} s (limits {:.0} requests/s, {:.0} bytes/s)",
                report.requests_per_sec,
                report.bytes_per_sec,
                load.hot_since
                    .map(|t| view.now.saturating_duration_since(t).as_secs())
                    .unwrap_or(0),
                config.split_requests_per_sec,
                config.split_bytes_per_sec
            )
        } else {
            format!("{} keys, {} bytes", report.keys, report.size_bytes)
        };
        let owner_addr = range
            .owner
            .as_ref()
            .map(|o| o.addr.clone())
            .unwrap_or_default();
        let heat = report.requests_per_sec;
        if best.as_ref().is_none_or(|(h, _)| heat > *h) {
            best = Some((
                heat,
                Action::Split {
                    range_id: range.range_id,
                    epoch: range.epoch,
                    owner_addr,
                    split_key,
                    why,
                },
            ));
        }
    }
    best.map(|(_, action)| action)
}

fn balance(view: &View<'_>) -> Option<Action> {
    if view.alive.len() < 2 {
        return None;
    }
    /// A server's total requests/s and its movable ranges with theirs.
    type ServerLoad<'a> = (f64, Vec<(&'a RangeRecord, f64)>);
    let mut per_server: BTreeMap<&str, ServerLoad<'_>> = view
        .alive
        .keys()
        .map(|id| (id.as_str(), (0.0, Vec::new())))
        .collect();
    for range in view.map.ranges.values() {
        let Some(load) = view.load(range) else {
            continue;
        };
        if let Some((total, ranges)) = per_server.get_mut(load.server_id.as_str()) {
            *total += load.report.requests_per_sec;
            if view.cooled(load) {
                ranges.push((range, load.report.requests_per_sec));
            }
        }
    }
    let (busiest, (busy_total, busy_ranges)) =
        per_server.iter().max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))?;
    let (idlest, (idle_total, _)) = per_server.iter().min_by(|a, b| a.1 .0.total_cmp(&b.1 .0))?;
    let busiest_ranges = view
        .map
        .ranges_per_owner()
        .get(&strata_types::ServerId::new(busiest.to_string()))
        .copied()
        .unwrap_or(0);
    if busiest == idlest || busiest_ranges < 2 {
        return None;
    }
    let gap = busy_total - idle_total;
    // Moving r narrows the gap when 0 < r < gap; the best r is gap / 2. A move costs a reload,
    // so it must lower the busiest server's load by a quarter at least (no flapping on noise).
    let worth_it = |rps: f64| {
        let busiest_after = (busy_total - rps).max(idle_total + rps);
        busy_total - busiest_after >= busy_total * MOVE_GAIN_MIN
    };
    let (range, rps) = busy_ranges
        .iter()
        .filter(|(_, rps)| *rps >= view.config.move_requests_per_sec_min && *rps < gap)
        .filter(|(_, rps)| worth_it(*rps))
        .min_by(|a, b| (a.1 - gap / 2.0).abs().total_cmp(&(b.1 - gap / 2.0).abs()))?;
    let to_addr = view.alive.get(*idlest)?.clone();
    Some(Action::Move {
        range_id: range.range_id,
        epoch: range.epoch,
        to_id: idlest.to_string(),
        to_addr,
        why: format!(
            "balance: {busiest} serves {busy_total:.0} requests/s, {idlest} {idle_total:.0}; the range {rps:.0}"
        ),
    })
}

fn merge(view: &View<'_>) -> Option<Action> {
    let config = view.config;
    let ranges = view.map.in_key_order();
    for pair in ranges.windows(2) {
        let (left, right) = (pair[0], pair[1]);
        let (Some(l), Some(r)) = (view.load(left), view.load(right)) else {
            continue;
        };
        let cold = |load: &RangeLoad| {
            view.cooled(load) && view.lasted(load.cold_since, config.merge_sustain)
        };
        if !cold(l) || !cold(r) {
            continue;
        }
        // The result must not be due for a split at once.
        let keys = l.report.keys + r.report.keys;
        let bytes = l.report.size_bytes + r.report.size_bytes;
        if keys * 2 >= config.split_keys_max || bytes * 2 >= config.split_size_bytes_max {
            continue;
        }
        let why = format!(
            "cold: {:.1} + {:.1} requests/s for over {} s",
            l.report.requests_per_sec,
            r.report.requests_per_sec,
            config.merge_sustain.as_secs()
        );
        let (left_owner, right_owner) = (left.owner.as_ref()?, right.owner.as_ref()?);
        if left_owner.server_id != right_owner.server_id {
            return Some(Action::Move {
                range_id: right.range_id,
                epoch: right.epoch,
                to_id: left_owner.server_id.to_string(),
                to_addr: left_owner.addr.clone(),
                why: format!("to merge with its neighbour ({why})"),
            });
        }
        return Some(Action::Merge {
            left: (left.range_id, left.epoch),
            right: (right.range_id, right.epoch),
            owner_addr: left_owner.addr.clone(),
            why,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::manager::ServedRange;
    use strata_types::ServerId;

    fn config() -> PlannerConfig {
        PlannerConfig {
            split_requests_per_sec: 100.0,
            split_sustain: Duration::from_secs(10),
            merge_requests_per_sec: 5.0,
            merge_sustain: Duration::from_secs(60),
            move_requests_per_sec_min: 20.0,
            cooldown: Duration::from_secs(10),
            ..PlannerConfig::default()
        }
    }

    /// A map of ranges split at `splits`, owned as `owners` says, every epoch 1.
    fn map(splits: &[&str], owners: &[&str]) -> PartitionMapState {
        let mut map = PartitionMapState::default();
        let mut bounds: Vec<Vec<u8>> = vec![Vec::new()];
        bounds.extend(splits.iter().map(|s| s.as_bytes().to_vec()));
        for (i, low) in bounds.iter().enumerate() {
            let high = bounds.get(i + 1).cloned().unwrap_or_default();
            let id = RangeId::new(i as u64 + 1);
            map.ranges.insert(
                id,
                RangeRecord {
                    range_id: id,
                    low: low.clone(),
                    high,
                    owner: Some(crate::map::RangeOwner {
                        server_id: ServerId::new(owners[i]),
                        addr: format!("{}:1", owners[i]),
                    }),
                    epoch: Epoch::new(1),
                },
            );
        }
        map.next_range_id = RangeId::new(bounds.len() as u64 + 1);
        map
    }

    fn alive(ids: &[&str]) -> BTreeMap<String, String> {
        ids.iter()
            .map(|id| (id.to_string(), format!("{id}:1")))
            .collect()
    }

    fn report(range: u64, rps: f64, keys: &[&str]) -> ServedRange {
        ServedRange {
            range_id: range,
            epoch: 1,
            requests_per_sec: rps,
            sampled_keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            keys: 100,
            ..Default::default()
        }
    }

    /// Feeds the same reports every second for `secs` seconds from `t0`.
    fn feed(table: &mut LoadTable, reports: &[(&str, ServedRange)], t0: Instant, secs: u64) {
        for s in 0..=secs {
            for (server, report) in reports {
                table.record(
                    server,
                    report.clone(),
                    config().thresholds(),
                    t0 + Duration::from_secs(s),
                );
            }
        }
    }

    #[test]
    fn a_sustained_hot_range_splits_at_its_sampled_median() {
        let map = map(&[], &["a"]);
        let keys: Vec<String> = (0..40).map(|i| format!("p/{i:02}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let t0 = Instant::now();
        let mut table = LoadTable::default();
        feed(&mut table, &[("a", report(1, 300.0, &keys))], t0, 5);
        let at = t0 + Duration::from_secs(5);
        assert_eq!(
            next_action(&map, &table, &alive(&["a", "b"]), &config(), at),
            None,
            "not sustained yet"
        );
        feed(&mut table, &[("a", report(1, 300.0, &keys))], t0, 12);
        let at = t0 + Duration::from_secs(12);
        match next_action(&map, &table, &alive(&["a", "b"]), &config(), at) {
            Some(Action::Split { split_key, .. }) => assert_eq!(split_key, b"p/20".to_vec()),
            other => panic!("{other:?}"),
        }
        // A single hot key cannot be split away.
        let mut table = LoadTable::default();
        feed(&mut table, &[("a", report(1, 300.0, &["p/1"; 40]))], t0, 12);
        assert_eq!(
            next_action(&map, &table, &alive(&["a"]), &config(), at),
            None
        );
    }

    #[test]
    fn load_moves_from_the_busiest_server_to_the_idlest() {
        let map = map(&["m"], &["a", "a"]);
        let t0 = Instant::now();
        let mut table = LoadTable::default();
        feed(
            &mut table,
            &[("a", report(1, 90.0, &[])), ("a", report(2, 80.0, &[]))],
            t0,
            11,
        );
        let at = t0 + Duration::from_secs(11);
        match next_action(&map, &table, &alive(&["a", "b"]), &config(), at) {
            Some(Action::Move {
                to_id, range_id, ..
            }) => {
                assert_eq!(to_id, "b");
                assert_eq!(
                    range_id,
                    RangeId::new(1),
                    "90 is nearest to half the gap of 170"
                );
            }
            other => panic!("{other:?}"),
        }
        // A move that would barely lower the busiest server's load is not worth a reload:
        // a serves 75 + 20, b 55; moving the 20 only brings the busiest from 95 to 75.
        let map3 = crate::planner::tests::map(&["m", "t"], &["a", "a", "b"]);
        let mut table = LoadTable::default();
        let reports = [
            ("a", report(1, 75.0, &[])),
            ("a", report(2, 20.0, &[])),
            ("b", report(3, 55.0, &[])),
        ];
        feed(&mut table, &reports, t0, 11);
        assert_eq!(
            next_action(&map3, &table, &alive(&["a", "b"]), &config(), at),
            None
        );
        // One range per server: nothing to gain.
        let map = crate::planner::tests::map(&["m"], &["a", "b"]);
        let mut table = LoadTable::default();
        feed(
            &mut table,
            &[("a", report(1, 90.0, &[])), ("b", report(2, 0.0, &[]))],
            t0,
            11,
        );
        assert_eq!(
            next_action(&map, &table, &alive(&["a", "b"]), &config(), at),
            None
        );
    }

    #[test]
    fn cold_neighbours_merge_after_being_colocated() {
        let t0 = Instant::now();
        let at = t0 + Duration::from_secs(61);
        let cold = |table: &mut LoadTable, owners: [&str; 2]| {
            feed(
                table,
                &[
                    (owners[0], report(1, 1.0, &[])),
                    (owners[1], report(2, 0.0, &[])),
                ],
                t0,
                61,
            )
        };
        let split_map = map(&["m"], &["a", "b"]);
        let mut table = LoadTable::default();
        cold(&mut table, ["a", "b"]);
        match next_action(&split_map, &table, &alive(&["a", "b"]), &config(), at) {
            Some(Action::Move {
                range_id, to_id, ..
            }) => {
                assert_eq!((range_id, to_id.as_str()), (RangeId::new(2), "a"));
            }
            other => panic!("{other:?}"),
        }
        let same_owner = map(&["m"], &["a", "a"]);
        let mut table = LoadTable::default();
        cold(&mut table, ["a", "a"]);
        assert!(matches!(
            next_action(&same_owner, &table, &alive(&["a", "b"]), &config(), at),
            Some(Action::Merge { .. })
        ));
        // Not cold for long enough: nothing.
        let early = t0 + Duration::from_secs(30);
        let mut table = LoadTable::default();
        feed(
            &mut table,
            &[("a", report(1, 1.0, &[])), ("a", report(2, 0.0, &[]))],
            t0,
            30,
        );
        assert_eq!(
            next_action(&same_owner, &table, &alive(&["a"]), &config(), early),
            None
        );
    }

    #[test]
    fn an_abandoned_freeze_is_renewed() {
        let map = map(&[], &["a"]);
        let t0 = Instant::now();
        let mut table = LoadTable::default();
        let mut frozen = report(1, 0.0, &[]);
        frozen.frozen_for_ms = 20_000;
        feed(&mut table, &[("a", frozen)], t0, 1);
        assert!(matches!(
            next_action(
                &map,
                &table,
                &alive(&["a"]),
                &config(),
                t0 + Duration::from_secs(1)
            ),
            Some(Action::Renew { .. })
        ));
    }
}
