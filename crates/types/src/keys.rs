//! The one sorted key space that range partitions cut.
//!
//! ```text
//! b <bucket>                                                    bucket records
//! o <bucket> 0x00 <key>                                         object index entries
//! o <bucket> 0x00 <key> 0x00 u <upload-id>                      a multipart upload of <key>
//! o <bucket> 0x00 <key> 0x00 u <upload-id> 0x00 <part u32 BE>   one uploaded part
//! o <bucket> 0x00 <key> 0x00 v <!stamp u64 BE>                   a noncurrent version of <key>
//! ```
//! Noncurrent versions store the bitwise complement of their version stamp, so a key's
//! versions sort newest first, after its uploads (`u` < `v`) and still before the next key.
//! Bucket names never contain 0x00 (they are `[a-z0-9.-]`), and 0x00 sorts before every other
//! byte, so all keys of one bucket are contiguous and sorted by raw key bytes, as S3 lists them.
//! Object keys never contain 0x00 either (the front-end refuses them: XML cannot carry U+0000),
//! so an upload's records sort right after their object's key and before every other key: they
//! always fall in the same range as the object, and completing an upload is a one-range commit.

/// Table byte of bucket records.
pub const TABLE_BUCKETS: u8 = b'b';
/// Table byte of object index entries.
pub const TABLE_OBJECTS: u8 = b'o';

/// Encoded key of a bucket record.
pub fn bucket_key(bucket: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + bucket.len());
    out.push(TABLE_BUCKETS);
    out.extend_from_slice(bucket.as_bytes());
    out
}

/// Encoded key of an object in a bucket.
pub fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut out = object_prefix(bucket);
    out.extend_from_slice(key.as_bytes());
    out
}

/// Encoded prefix shared by every object of a bucket.
pub fn object_prefix(bucket: &str) -> Vec<u8> {
    debug_assert!(!bucket.as_bytes().contains(&0));
    let mut out = Vec::with_capacity(2 + bucket.len());
    out.push(TABLE_OBJECTS);
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    out
}

/// Encoded key of a multipart upload record of `key`.
pub fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    debug_assert!(!key.as_bytes().contains(&0) && !upload_id.as_bytes().contains(&0));
    let mut out = object_key(bucket, key);
    out.push(0);
    out.push(b'u');
    out.extend_from_slice(upload_id.as_bytes());
    out
}

/// Encoded key of one part of a multipart upload; parts sort by number.
pub fn part_key(bucket: &str, key: &str, upload_id: &str, part_number: u32) -> Vec<u8> {
    let mut out = upload_key(bucket, key, upload_id);
    out.push(0);
    out.extend_from_slice(&part_number.to_be_bytes());
    out
}

/// Encoded prefix of every noncurrent version of `key`.
pub fn version_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut out = object_key(bucket, key);
    out.push(0);
    out.push(b'v');
    out
}

/// Encoded key of the noncurrent version of `key` with version stamp `stamp`.
pub fn version_key(bucket: &str, key: &str, stamp: u64) -> Vec<u8> {
    let mut out = version_prefix(bucket, key);
    out.extend_from_slice(&(!stamp).to_be_bytes());
    out
}

/// Splits an encoded noncurrent-version key into (bucket, key, stamp).
pub fn decode_version_key(encoded: &[u8]) -> Option<(&str, &str, u64)> {
    let rest = encoded.strip_prefix(&[TABLE_OBJECTS])?;
    let bucket_end = rest.iter().position(|&b| b == 0)?;
    let bucket = std::str::from_utf8(&rest[..bucket_end]).ok()?;
    let rest = &rest[bucket_end + 1..];
    let key_end = rest.iter().position(|&b| b == 0)?;
    let key = std::str::from_utf8(&rest[..key_end]).ok()?;
    let stamp: [u8; 8] = rest[key_end + 1..].strip_prefix(b"v")?.try_into().ok()?;
    Some((bucket, key, !u64::from_be_bytes(stamp)))
}

/// Splits an encoded object key back into (bucket, key). None for any other table or for bytes
/// that are not UTF-8 (which the front-end never writes).
pub fn decode_object_key(encoded: &[u8]) -> Option<(&str, &str)> {
    let rest = encoded.strip_prefix(&[TABLE_OBJECTS])?;
    let separator = rest.iter().position(|&b| b == 0)?;
    let bucket = std::str::from_utf8(&rest[..separator]).ok()?;
    let key = std::str::from_utf8(&rest[separator + 1..]).ok()?;
    Some((bucket, key))
}

/// Splits an encoded upload record key back into (bucket, key, upload id). None for any other
/// key (objects, parts, buckets).
pub fn decode_upload_key(encoded: &[u8]) -> Option<(&str, &str, &str)> {
    let rest = encoded.strip_prefix(&[TABLE_OBJECTS])?;
    let bucket_end = rest.iter().position(|&b| b == 0)?;
    let bucket = std::str::from_utf8(&rest[..bucket_end]).ok()?;
    let rest = &rest[bucket_end + 1..];
    let key_end = rest.iter().position(|&b| b == 0)?;
    let key = std::str::from_utf8(&rest[..key_end]).ok()?;
    let upload_id = rest[key_end + 1..].strip_prefix(b"u")?;
    if upload_id.contains(&0) {
        return None; // a part key
    }
    Some((bucket, key, std::str::from_utf8(upload_id).ok()?))
}

/// Decodes a bucket record key.
pub fn decode_bucket_key(encoded: &[u8]) -> Option<&str> {
    let rest = encoded.strip_prefix(&[TABLE_BUCKETS])?;
    std::str::from_utf8(rest).ok()
}

/// The smallest encoded key strictly greater than every key starting with `prefix`, or None
/// when no such key exists (the prefix is all 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Whether `key` falls in the range `[low, high)`; an empty `high` means +infinity.
pub fn range_contains(low: &[u8], high: &[u8], key: &[u8]) -> bool {
    key >= low && (high.is_empty() || key < high)
}

/// Whether the ranges `[a_low, a_high)` and `[b_low, b_high)` share a key (an empty high is
/// +infinity).
pub fn ranges_overlap(a_low: &[u8], a_high: &[u8], b_low: &[u8], b_high: &[u8]) -> bool {
    (a_high.is_empty() || a_high > b_low) && (b_high.is_empty() || b_high > a_low)
}

/// The key a range may be split at for `key`: an object's own key when `key` is one of its
/// uploads, parts or noncurrent versions (they must stay in the object's range), else `key`.
pub fn split_point(key: &[u8]) -> Vec<u8> {
    if key.first() != Some(&TABLE_OBJECTS) {
        return key.to_vec();
    }
    // o <bucket> 0x00 <key> [0x00 ...]: cut at the second 0x00.
    let mut zeros = key
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == 0)
        .map(|(i, _)| i);
    match (zeros.next(), zeros.next()) {
        (Some(_), Some(second)) => key[..second].to_vec(),
        _ => key.to_vec(),
    }
}

/// Shows an encoded key readably: printable ASCII as is, other bytes as \xNN.
pub fn display(key: &[u8]) -> String {
    key.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_keep_an_object_with_its_uploads_and_versions() {
        let object = object_key("b", "photos/1");
        assert_eq!(split_point(&object), object);
        assert_eq!(split_point(&upload_key("b", "photos/1", "u1")), object);
        assert_eq!(split_point(&part_key("b", "photos/1", "u1", 3)), object);
        assert_eq!(split_point(&version_key("b", "photos/1", 9)), object);
        assert_eq!(split_point(&bucket_key("b")), bucket_key("b"));
        assert_eq!(display(b"o\x00a"), "o\\x00a");
    }

    #[test]
    fn ranges_overlap_when_they_share_a_key_and_an_empty_high_is_unbounded() {
        assert!(ranges_overlap(b"a", b"c", b"b", b"d"));
        assert!(!ranges_overlap(b"a", b"b", b"b", b"c"), "high is exclusive");
        assert!(!ranges_overlap(b"b", b"c", b"a", b"b"));
        assert!(ranges_overlap(b"x", b"", b"a", b"y"));
        assert!(ranges_overlap(b"", b"", b"m", b"n"));
        assert!(!ranges_overlap(b"x", b"", b"a", b"x"));
    }

    #[test]
    fn object_keys_sort_by_raw_key_within_a_bucket() {
        let mut keys = vec!["b", "a/z", "a", "a/", "\u{e9}", "A", "a-"];
        let mut encoded: Vec<Vec<u8>> = keys.iter().map(|k| object_key("photos", k)).collect();
        encoded.sort();
        keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let decoded: Vec<&str> = encoded
            .iter()
            .map(|e| decode_object_key(e).unwrap().1)
            .collect();
        assert_eq!(decoded, keys);
    }

    #[test]
    fn buckets_do_not_interleave() {
        // "ab" objects must all sort before "ab-c" objects and after "a" objects.
        let last_of_ab = object_key("ab", "\u{10ffff}");
        let first_of_abc = object_key("ab-c", "");
        let last_of_a = object_key("a", "zzzz");
        assert!(last_of_ab < first_of_abc);
        assert!(last_of_a < object_key("ab", ""));
        assert!(prefix_end(&object_prefix("ab")).unwrap() <= first_of_abc);
    }

    #[test]
    fn uploads_sort_right_after_their_object() {
        let object = object_key("b", "photo");
        let upload = upload_key("b", "photo", "abc");
        let part_2 = part_key("b", "photo", "abc", 2);
        let part_10 = part_key("b", "photo", "abc", 10);
        let next_object = object_key("b", "photo\u{1}");
        assert!(object < upload && upload < part_2 && part_2 < part_10 && part_10 < next_object);
        assert!(part_10 < object_key("b", "photo-2"));
        assert!(part_10.starts_with(&upload));
    }

    #[test]
    fn versions_sort_newest_first_after_uploads() {
        let object = object_key("b", "k");
        let upload = upload_key("b", "k", "zzz");
        let newer = version_key("b", "k", 20);
        let older = version_key("b", "k", 10);
        let next = object_key("b", "k\u{1}");
        assert!(object < upload && upload < newer && newer < older && older < next);
        assert!(older.starts_with(&version_prefix("b", "k")));
        assert_eq!(decode_version_key(&older), Some(("b", "k", 10)));
        assert_eq!(decode_version_key(&upload), None);
        assert_eq!(decode_object_key(&object_key("b", "k")), Some(("b", "k")));
    }

    #[test]
    fn round_trips() {
        let encoded = object_key("bkt", "dir/file.txt");
        assert_eq!(decode_object_key(&encoded), Some(("bkt", "dir/file.txt")));
        assert_eq!(decode_bucket_key(&bucket_key("bkt")), Some("bkt"));
        assert_eq!(decode_object_key(&bucket_key("bkt")), None);
        let upload = upload_key("bkt", "dir/a", "abc");
        assert_eq!(decode_upload_key(&upload), Some(("bkt", "dir/a", "abc")));
        assert_eq!(decode_upload_key(&part_key("bkt", "dir/a", "abc", 1)), None);
        assert_eq!(decode_upload_key(&object_key("bkt", "dir/a")), None);
    }

    #[test]
    fn prefix_end_and_ranges() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert!(range_contains(b"", b"", b"anything"));
        assert!(range_contains(b"b", b"d", b"c"));
        assert!(!range_contains(b"b", b"d", b"d"));
    }
}
