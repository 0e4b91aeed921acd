//! Sync passes of a bucket move: a merge-join, in key order, of the source's rows and the
//! target's, which copies what the target lacks or holds differently and removes what only
//! the target holds; a verification pass only counts the differences.
//!
//! Invariant: a key is decided only once both sides' rows up to it are known (every row up to
//! the smaller of the two sides' last fetched keys), so a page boundary never makes a key look
//! missing on one side.

use super::progress::Progress;
use super::rows::{copy_row, is_not_found_error, Copied, Cursor, Stamp};
use futures::StreamExt;
use std::collections::VecDeque;
use strata_proto::record::IndexEntry;

/// Rows copied at once (each streams through its own bounded queue).
const COPIES_IN_FLIGHT_MAX: usize = 8;
/// Pages one scan of one side may fetch (a billion rows at 1000 a page): a bound that no real
/// bucket reaches, against a server whose pages would never end.
const PAGES_PER_SCAN_MAX: u64 = 1_000_000;

/// What a pass does to one key of the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Copy the source's row; `in_target`: the target holds another row under the key.
    Copy { key: Vec<u8>, in_target: bool },
    /// Remove the target's row (the source has none).
    Remove { key: Vec<u8> },
}

/// The actions that make `target` equal to `source`, both sorted by key with unique keys.
/// Rows come without chunk locations on both sides, so equal rows compare equal.
pub fn merge(source: &[IndexEntry], target: &[IndexEntry]) -> Vec<Action> {
    let mut actions = Vec::new();
    let (mut s, mut t) = (0, 0);
    loop {
        match (source.get(s), target.get(t)) {
            (None, None) => return actions,
            (Some(a), Some(b)) if a.key == b.key => {
                if a != b {
                    let key = a.key.clone();
                    actions.push(Action::Copy {
                        key,
                        in_target: true,
                    });
                }
                (s, t) = (s + 1, t + 1);
            }
            (Some(a), Some(b)) if a.key > b.key => {
                actions.push(Action::Remove { key: b.key.clone() });
                t += 1;
            }
            (None, Some(b)) => {
                actions.push(Action::Remove { key: b.key.clone() });
                t += 1;
            }
            (Some(a), _) => {
                let key = a.key.clone();
                actions.push(Action::Copy {
                    key,
                    in_target: false,
                });
                s += 1;
            }
        }
    }
}

/// Whether a pass changes the target or only counts what differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Verify,
}

/// What one pass saw and did.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassCounts {
    /// Rows read from the source.
    pub rows_seen: u64,
    pub rows_copied: u64,
    pub rows_removed: u64,
    pub bytes_copied: u64,
    /// Keys on which the two sides differed (copied or removed, or only counted).
    pub differences: u64,
}

impl PassCounts {
    pub fn line(&self, label: &str) -> String {
        format!(
            "{label}: {} rows read, {} copied ({}), {} removed, {} differed",
            self.rows_seen,
            self.rows_copied,
            indicatif::HumanBytes(self.bytes_copied),
            self.rows_removed,
            self.differences
        )
    }
}

/// One side of the merge: rows fetched and not yet decided, and where its scan goes on.
struct Side {
    rows: VecDeque<IndexEntry>,
    next: Option<Cursor>,
    pages: u64,
}

impl Side {
    fn new() -> Self {
        Side {
            rows: VecDeque::new(),
            next: Some(Cursor::default()),
            pages: 0,
        }
    }

    /// Fetches pages from `stamp` until a row is at hand or the scan ended (a page may be
    /// empty when a range of the server holds none of the bucket's keys).
    async fn fill(&mut self, stamp: &Stamp, bucket: &str) -> anyhow::Result<()> {
        while self.rows.is_empty() {
            let Some(cursor) = self.next.take() else {
                return Ok(());
            };
            self.pages += 1;
            anyhow::ensure!(
                self.pages <= PAGES_PER_SCAN_MAX,
                "the scan of {bucket} on {} passed {PAGES_PER_SCAN_MAX} pages",
                stamp.name
            );
            let page = stamp.scan(bucket, &cursor).await?;
            self.rows.extend(page.rows);
            self.next = page.next;
        }
        Ok(())
    }

    fn ended(&self) -> bool {
        self.rows.is_empty() && self.next.is_none()
    }

    /// Up to where this side's rows are all known: its last fetched key (None: every key).
    fn known_through(&self) -> Option<&[u8]> {
        match self.next {
            Some(_) => self.rows.back().map(|row| row.key.as_slice()),
            None => None,
        }
    }

    /// Takes the rows up to `through` (None: all).
    fn take_through(&mut self, through: Option<&[u8]>) -> Vec<IndexEntry> {
        let count = match through {
            Some(last) => self.rows.partition_point(|row| row.key.as_slice() <= last),
            None => self.rows.len(),
        };
        self.rows.drain(..count).collect()
    }
}

/// The next rows of both sides that can be decided (both filled: a side that has not ended
/// holds a row), or None when both ended.
fn window(source: &mut Side, target: &mut Side) -> Option<(Vec<IndexEntry>, Vec<IndexEntry>)> {
    if source.ended() && target.ended() {
        return None;
    }
    let through = match (source.known_through(), target.known_through()) {
        (Some(a), Some(b)) => Some(a.min(b).to_vec()),
        (a, b) => a.or(b).map(<[u8]>::to_vec),
    };
    Some((
        source.take_through(through.as_deref()),
        target.take_through(through.as_deref()),
    ))
}

/// One key whose rows differ between a bucket's home and a copy (None: no row there).
#[derive(Clone, Debug)]
pub struct Difference {
    pub home: Option<IndexEntry>,
    pub copy: Option<IndexEntry>,
}

/// `row` without what replication alone sets on a version (its status, its mark, and the
/// write id a replica does not keep), so a replica compares equal to its original.
pub fn replication_blind(row: &IndexEntry) -> IndexEntry {
    use strata_proto::record::index_entry::Value;
    let mut row = row.clone();
    if let Some(Value::Object(version) | Value::Version(version)) = row.value.as_mut() {
        version.replication_status = 0;
        version.replication_mark_ms = 0;
        version.write_id.clear();
    }
    row
}

/// The two stamps of one move, and the bucket they move.
pub struct Mover<'a> {
    pub source: &'a Stamp,
    pub target: &'a Stamp,
    pub bucket: &'a str,
    pub move_id: &'a str,
}

impl Mover<'_> {
    /// (Re)writes the bucket's record on the target from the source's (its configuration may
    /// have changed since the last pass).
    pub async fn copy_bucket_row(&self) -> anyhow::Result<()> {
        let meta = self.source.get_bucket(self.bucket).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "{} has no record of bucket {}",
                self.source.name,
                self.bucket
            )
        })?;
        let record = super::rows::bucket_record(&meta, self.move_id)?;
        self.target
            .import_bucket_row(self.bucket, self.move_id, record)
            .await
    }

    /// One merge-join over the whole bucket.
    pub async fn pass(
        &self,
        mode: Mode,
        progress: &Progress,
        label: &str,
    ) -> anyhow::Result<PassCounts> {
        let mut counts = PassCounts::default();
        let (mut source, mut target) = (Side::new(), Side::new());
        loop {
            source.fill(self.source, self.bucket).await?;
            target.fill(self.target, self.bucket).await?;
            let Some((from_source, from_target)) = window(&mut source, &mut target) else {
                progress.line(&counts.line(label));
                return Ok(counts);
            };
            counts.rows_seen += from_source.len() as u64;
            let actions = merge(&from_source, &from_target);
            counts.differences += actions.len() as u64;
            if mode == Mode::Apply {
                self.apply(actions, &mut counts, progress, label).await?;
            }
            progress.update(&counts.line(label));
        }
    }

    /// Carries out one window's actions: removals batched, copies a few at a time.
    async fn apply(
        &self,
        actions: Vec<Action>,
        counts: &mut PassCounts,
        progress: &Progress,
        label: &str,
    ) -> anyhow::Result<()> {
        let mut removals = Vec::new();
        let mut copies = Vec::new();
        for action in actions {
            match action {
                Action::Remove { key } => removals.push(key),
                Action::Copy { key, in_target } => copies.push((key, in_target)),
            }
        }
        if !removals.is_empty() {
            counts.rows_removed += self.remove_from_target(&removals).await?;
        }
        let mut copying = futures::stream::iter(copies)
            .map(|(key, in_target)| async move {
                let copied = copy_row(self.source, self.target, self.bucket, self.move_id, &key);
                (copied.await, key, in_target)
            })
            .buffer_unordered(COPIES_IN_FLIGHT_MAX);
        // A row the source lost since its scan: the target must not keep its own.
        let mut gone = Vec::new();
        while let Some((copied, key, in_target)) = copying.next().await {
            match copied? {
                Copied::Row { bytes } => {
                    counts.rows_copied += 1;
                    counts.bytes_copied += bytes;
                }
                Copied::Gone if in_target => gone.push(key),
                Copied::Gone => {}
            }
            progress.update(&counts.line(label));
        }
        if !gone.is_empty() {
            gone.sort();
            counts.rows_removed += self.remove_from_target(&gone).await?;
        }
        Ok(())
    }

    /// Every key whose row differs between the source and the target, blind to what
    /// replication alone sets ([`replication_blind`]): what a fail-over to a geo-replica's
    /// copy loses (rows only the source holds, or holds otherwise) and brings back (rows
    /// only the copy holds: versions deleted on the source, which replication never
    /// deletes). At most `limit` are kept; answers them and how many there were.
    pub async fn differences(
        &self,
        progress: &Progress,
        limit: usize,
    ) -> anyhow::Result<(Vec<Difference>, u64)> {
        let (mut kept, mut total) = (Vec::new(), 0u64);
        let (mut source, mut target) = (Side::new(), Side::new());
        loop {
            source.fill(self.source, self.bucket).await?;
            target.fill(self.target, self.bucket).await?;
            let Some((from_source, from_target)) = window(&mut source, &mut target) else {
                return Ok((kept, total));
            };
            let blind = |rows: &[IndexEntry]| rows.iter().map(replication_blind).collect();
            let (home, copy): (Vec<_>, Vec<_>) = (blind(&from_source), blind(&from_target));
            for action in merge(&home, &copy) {
                total += 1;
                if kept.len() >= limit {
                    continue;
                }
                let find = |rows: &[IndexEntry], key: &[u8]| {
                    rows.iter().find(|row| row.key == key).cloned()
                };
                kept.push(match action {
                    Action::Copy { key, .. } => Difference {
                        home: find(&from_source, &key),
                        copy: find(&from_target, &key),
                    },
                    Action::Remove { key } => Difference {
                        home: None,
                        copy: find(&from_target, &key),
                    },
                });
            }
            progress.update(&format!("comparing: {total} rows differ"));
        }
    }

    async fn remove_from_target(&self, keys: &[Vec<u8>]) -> anyhow::Result<u64> {
        self.target
            .remove_rows(self.bucket, self.move_id, keys)
            .await
    }
}

/// Removes every row of the bucket from `stamp` (a source after the switch, a target after an
/// abort); answers how many were removed. A stamp without the bucket's record has none.
pub async fn remove_all(
    stamp: &Stamp,
    bucket: &str,
    move_id: &str,
    progress: &Progress,
) -> anyhow::Result<u64> {
    let mut side = Side::new();
    let mut removed = 0;
    loop {
        match side.fill(stamp, bucket).await {
            Err(err) if is_not_found_error(&err) => return Ok(removed),
            filled => filled?,
        }
        if side.ended() {
            return Ok(removed);
        }
        let keys: Vec<Vec<u8>> = side.take_through(None).into_iter().map(|r| r.key).collect();
        removed += stamp.remove_rows(bucket, move_id, &keys).await?;
        progress.update(&format!(
            "removing {bucket} from {}: {removed} rows",
            stamp.name
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::record::{index_entry, ObjectRecord};

    fn row(key: &str, etag: &str) -> IndexEntry {
        IndexEntry {
            key: key.as_bytes().to_vec(),
            value: Some(index_entry::Value::Object(ObjectRecord {
                etag: etag.into(),
                ..Default::default()
            })),
        }
    }

    fn copy(key: &str, in_target: bool) -> Action {
        Action::Copy {
            key: key.as_bytes().to_vec(),
            in_target,
        }
    }

    fn remove(key: &str) -> Action {
        Action::Remove {
            key: key.as_bytes().to_vec(),
        }
    }

    #[test]
    fn merge_copies_what_is_missing_or_different_and_removes_what_only_the_target_has() {
        let source = [row("a", "1"), row("b", "2"), row("d", "4"), row("f", "6")];
        let target = [row("b", "2"), row("c", "3"), row("d", "x"), row("g", "7")];
        assert_eq!(
            merge(&source, &target),
            [
                copy("a", false),
                remove("c"),
                copy("d", true),
                copy("f", false),
                remove("g")
            ]
        );
    }

    #[test]
    fn merge_of_equal_sides_does_nothing_and_one_empty_side_is_all_copies_or_removals() {
        let rows = [row("a", "1"), row("b", "2")];
        assert!(merge(&rows, &rows).is_empty());
        assert!(merge(&[], &[]).is_empty());
        assert_eq!(merge(&rows, &[]), [copy("a", false), copy("b", false)]);
        assert_eq!(merge(&[], &rows), [remove("a"), remove("b")]);
    }

    #[test]
    fn a_row_that_differs_only_in_its_value_kind_is_copied() {
        let mut version = row("a", "1");
        if let Some(index_entry::Value::Object(object)) = version.value.take() {
            version.value = Some(index_entry::Value::Version(object));
        }
        assert_eq!(merge(&[row("a", "1")], &[version]), [copy("a", true)]);
    }

    /// Runs the windowed merge over `source` and `target` cut into pages of the given sizes
    /// (0: an empty page, as a range without the bucket's keys gives).
    fn paged_merge(
        source: &[IndexEntry],
        source_pages: &[usize],
        target: &[IndexEntry],
        target_pages: &[usize],
    ) -> Vec<Action> {
        fn pages(rows: &[IndexEntry], sizes: &[usize]) -> VecDeque<Vec<IndexEntry>> {
            let mut rest = rows;
            let mut pages: VecDeque<_> = sizes
                .iter()
                .map(|&size| {
                    let (page, tail) = rest.split_at(size.min(rest.len()));
                    rest = tail;
                    page.to_vec()
                })
                .collect();
            pages.push_back(rest.to_vec());
            pages
        }
        fn fill(side: &mut Side, pages: &mut VecDeque<Vec<IndexEntry>>) {
            while side.rows.is_empty() && side.next.is_some() {
                side.rows.extend(pages.pop_front().unwrap_or_default());
                if pages.is_empty() {
                    side.next = None;
                }
            }
        }
        let (mut source_pages, mut target_pages) =
            (pages(source, source_pages), pages(target, target_pages));
        let (mut s, mut t) = (Side::new(), Side::new());
        let mut actions = Vec::new();
        for _ in 0..1000 {
            fill(&mut s, &mut source_pages);
            fill(&mut t, &mut target_pages);
            let Some((a, b)) = window(&mut s, &mut t) else {
                return actions;
            };
            actions.extend(merge(&a, &b));
        }
        panic!("the windowed merge did not end");
    }

    #[test]
    fn page_boundaries_never_make_a_key_look_missing() {
        let rows =
            |keys: &[&str]| -> Vec<IndexEntry> { keys.iter().map(|k| row(k, "1")).collect() };
        let source = rows(&["a", "b", "c", "d", "e", "f", "g"]);
        let mut target = rows(&["b", "c", "d", "h", "i"]);
        target[1] = row("c", "old");
        let whole = merge(&source, &target);
        assert_eq!(whole.len(), 7, "{whole:?}");
        for source_pages in [&[1, 1, 1][..], &[3, 0, 2], &[0, 0, 7], &[7], &[2, 2, 2]] {
            for target_pages in [&[1, 1][..], &[0, 3], &[5], &[2, 0, 0, 2], &[4]] {
                let paged = paged_merge(&source, source_pages, &target, target_pages);
                assert_eq!(paged, whole, "{source_pages:?} / {target_pages:?}");
            }
        }
        assert_eq!(
            paged_merge(&[], &[0, 0], &target, &[1]),
            merge(&[], &target)
        );
        assert!(paged_merge(&source, &[2], &source, &[3, 1]).is_empty());
    }

    #[test]
    fn a_cursor_routes_to_the_first_key_its_page_may_hold() {
        let start = Cursor::default();
        assert_eq!(start.first_key("bk"), b"obk\0".to_vec());
        let after = Cursor {
            after: b"obk\0x".to_vec(),
            inclusive: false,
        };
        assert_eq!(after.first_key("bk"), b"obk\0x\0".to_vec());
        let at = Cursor {
            after: b"obk\0x".to_vec(),
            inclusive: true,
        };
        assert_eq!(at.first_key("bk"), b"obk\0x".to_vec());
    }
}
