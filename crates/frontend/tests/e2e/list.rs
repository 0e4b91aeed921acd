//! End to end for listings across ranges on several servers: bucket photos's keys span three
//! ranges, A owns ranges 1 and 3 and B owns range 2 (between them), so A's ranges are not
//! contiguous. Every listing must return every key exactly once, in order, whatever the page
//! size (the front-end's `stretches.rs`). ps-a is "A", ps-b is "B".

use crate::common::client::{assert_error, field, Client};
use crate::common::{Options, Stamp};
use strata_types::keys;

/// Range 1 ends inside logs/ (a common prefix spanning ranges 1 and 2), range 2 ends at "t".
fn bounds() -> (Vec<u8>, Vec<u8>) {
    (
        keys::object_key("photos", "logs/m"),
        keys::object_key("photos", "t"),
    )
}

/// Keys of range 1 (A), range 2 (B) and range 3 (A).
const RANGE_1: &[&str] = &["a.txt", "b/1", "b/2", "logs/a", "logs/b"];
const RANGE_2: &[&str] = &["logs/n", "logs/z", "m.txt", "n/1", "q.txt"];
const RANGE_3: &[&str] = &["t.txt", "u/1", "u/2", "zz"];

fn all_keys() -> Vec<String> {
    [RANGE_1, RANGE_2, RANGE_3]
        .concat()
        .iter()
        .map(|k| k.to_string())
        .collect()
}

/// Photos's keys over three ranges: 1 and 3 on A, 2 on B; every key of [`all_keys`] written.
async fn three_ranges() -> Stamp {
    let stamp = Stamp::start(Options::default()).await;
    let (b1, b2) = bounds();
    stamp.split_at(&b1).await;
    stamp.split_at(&b2).await;
    stamp.move_range(&b1, 1).await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    for key in all_keys() {
        let put = c
            .put(&format!("/photos/{key}"), key.as_bytes().to_vec())
            .await;
        assert_eq!(put.status, 200, "{}", put.text());
    }
    stamp
}

/// Every `<tag>` value inside every `<within>` element, in order.
fn fields_in(text: &str, within: &str, tag: &str) -> Vec<String> {
    let open = format!("<{within}>");
    let close = format!("</{within}>");
    text.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split_once(close.as_str()).map(|(v, _)| v))
        .filter_map(|element| field(element, tag))
        .collect()
}

/// One page's names: keys, then common prefixes (marked "P:"), each group as the XML has it.
fn page_names(text: &str, item: &str) -> Vec<String> {
    let mut names = fields_in(text, item, "Key");
    names.extend(
        fields_in(text, "CommonPrefixes", "Prefix")
            .into_iter()
            .map(|p| format!("P:{p}")),
    );
    names
}

fn without_mark(name: &str) -> &str {
    name.strip_prefix("P:").unwrap_or(name)
}

/// Asserts that every page lists its names in order and after the previous page's.
fn assert_pages_in_order(pages: &[Vec<String>]) {
    let mut last: Option<String> = None;
    for page in pages {
        let mut sorted: Vec<&str> = page.iter().map(|n| without_mark(n)).collect();
        sorted.sort();
        for name in sorted {
            if let Some(last) = &last {
                assert!(name > last.as_str(), "{name} after {last}: {pages:?}");
            }
            last = Some(name.to_string());
        }
    }
}

/// Every page of a ListObjectsV2, following continuation tokens.
async fn list_v2(c: &Client, max_keys: &str, delimiter: Option<&str>) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let mut query = vec![("list-type", "2"), ("max-keys", max_keys)];
        if let Some(delimiter) = delimiter {
            query.push(("delimiter", delimiter));
        }
        if let Some(token) = token.as_deref() {
            query.push(("continuation-token", token));
        }
        let reply = c.query("GET", "/photos", &query).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let text = reply.text();
        pages.push(page_names(&text, "Contents"));
        token = field(&text, "NextContinuationToken");
        let truncated = field(&text, "IsTruncated").as_deref() == Some("true");
        assert_eq!(truncated, token.is_some(), "{text}");
        if !truncated {
            return pages;
        }
    }
    panic!("the listing never ended");
}

fn flat(pages: &[Vec<String>]) -> Vec<String> {
    let mut names: Vec<String> = pages.concat();
    names.sort_by(|a, b| without_mark(a).cmp(without_mark(b)));
    names
}

#[tokio::test]
async fn e2e_list_objects_v2_across_non_contiguous_ranges_of_one_server() {
    let stamp = three_ranges().await;
    let c = &stamp.client;
    for max_keys in ["1000", "1", "2", "3", "5"] {
        let pages = list_v2(c, max_keys, None).await;
        assert_pages_in_order(&pages);
        assert_eq!(flat(&pages), all_keys(), "max-keys {max_keys}");
        if max_keys == "2" {
            assert_eq!(pages.len(), 7);
            assert!(pages.iter().all(|p| p.len() <= 2));
        }
    }
    // Delimiter: logs/ spans ranges 1 and 2 and is listed once.
    let expected: Vec<String> = [
        "a.txt", "P:b/", "P:logs/", "m.txt", "P:n/", "q.txt", "t.txt", "P:u/", "zz",
    ]
    .map(String::from)
    .to_vec();
    for max_keys in ["1000", "1", "2", "4"] {
        let pages = list_v2(c, max_keys, Some("/")).await;
        assert_pages_in_order(&pages);
        assert_eq!(flat(&pages), expected, "max-keys {max_keys}");
    }
    // A prefix whose keys all live on B, and one starting in range 2 and ending in range 3.
    let reply = c
        .query("GET", "/photos", &[("list-type", "2"), ("prefix", "logs/")])
        .await;
    assert_eq!(
        fields_in(&reply.text(), "Contents", "Key"),
        ["logs/a", "logs/b", "logs/n", "logs/z"]
    );
    let reply = c
        .query(
            "GET",
            "/photos",
            &[
                ("list-type", "2"),
                ("start-after", "q.txt"),
                ("max-keys", "2"),
            ],
        )
        .await;
    assert_eq!(
        fields_in(&reply.text(), "Contents", "Key"),
        ["t.txt", "u/1"]
    );
    // ListObjects v1 with markers.
    let mut marker = String::new();
    let mut v1 = Vec::new();
    for _ in 0..100 {
        let mut query = vec![("max-keys", "3")];
        if !marker.is_empty() {
            query.push(("marker", marker.as_str()));
        }
        let reply = c.query("GET", "/photos", &query).await;
        let text = reply.text();
        let keys = fields_in(&text, "Contents", "Key");
        v1.extend(keys.clone());
        if field(&text, "IsTruncated").as_deref() != Some("true") {
            break;
        }
        marker = keys.last().unwrap().clone();
    }
    assert_eq!(v1, all_keys());
}

#[tokio::test]
async fn e2e_list_object_versions_across_non_contiguous_ranges() {
    let stamp = three_ranges().await;
    let c = &stamp.client;
    for (max_keys, delimiter) in [
        ("1000", None),
        ("2", None),
        ("3", Some("/")),
        ("1", Some("/")),
    ] {
        let mut pages = Vec::new();
        let mut markers: Option<(String, Option<String>)> = None;
        for _ in 0..100 {
            let mut query = vec![("versions", ""), ("max-keys", max_keys)];
            if let Some(delimiter) = delimiter {
                query.push(("delimiter", delimiter));
            }
            if let Some((key, version)) = &markers {
                query.push(("key-marker", key.as_str()));
                if let Some(version) = version {
                    query.push(("version-id-marker", version.as_str()));
                }
            }
            let reply = c.query("GET", "/photos", &query).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            let text = reply.text();
            pages.push(page_names(&text, "Version"));
            if field(&text, "IsTruncated").as_deref() != Some("true") {
                break;
            }
            markers = Some((
                field(&text, "NextKeyMarker").expect("a next key marker"),
                field(&text, "NextVersionIdMarker"),
            ));
        }
        assert_pages_in_order(&pages);
        let expected: Vec<String> = match delimiter {
            None => all_keys(),
            Some(_) => [
                "a.txt", "P:b/", "P:logs/", "m.txt", "P:n/", "q.txt", "t.txt", "P:u/", "zz",
            ]
            .map(String::from)
            .to_vec(),
        };
        assert_eq!(flat(&pages), expected, "max-keys {max_keys}");
    }
}

#[tokio::test]
async fn e2e_list_multipart_uploads_across_non_contiguous_ranges() {
    let stamp = three_ranges().await;
    let c = &stamp.client;
    // Two uploads of a key in each range.
    let mut expected = Vec::new();
    for key in ["b/1", "logs/z", "zz"] {
        for _ in 0..2 {
            let reply = c
                .query("POST", &format!("/photos/{key}"), &[("uploads", "")])
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            let id = field(&reply.text(), "UploadId").unwrap();
            expected.push(format!("{key}#{id}"));
        }
    }
    expected.sort();
    for max_uploads in ["1000", "1", "2", "4"] {
        let mut listed = Vec::new();
        let mut markers: Option<(String, String)> = None;
        for _ in 0..100 {
            let mut query = vec![("uploads", ""), ("max-uploads", max_uploads)];
            if let Some((key, id)) = &markers {
                query.push(("key-marker", key.as_str()));
                query.push(("upload-id-marker", id.as_str()));
            }
            let reply = c.query("GET", "/photos", &query).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            let text = reply.text();
            let keys = fields_in(&text, "Upload", "Key");
            let ids = fields_in(&text, "Upload", "UploadId");
            listed.extend(keys.iter().zip(&ids).map(|(k, id)| format!("{k}#{id}")));
            if field(&text, "IsTruncated").as_deref() != Some("true") {
                break;
            }
            markers = Some((
                field(&text, "NextKeyMarker").unwrap(),
                field(&text, "NextUploadIdMarker").unwrap(),
            ));
        }
        assert_eq!(listed, expected, "max-uploads {max_uploads}");
    }
}

#[tokio::test]
async fn e2e_delete_bucket_sees_keys_in_the_middle_range() {
    let stamp = three_ranges().await;
    let c = &stamp.client;
    // Only m.txt (range 2, on B) is left.
    for key in all_keys().iter().filter(|k| *k != "m.txt") {
        let reply = c.call("DELETE", &format!("/photos/{key}")).await;
        assert_eq!(reply.status, 204, "{}", reply.text());
    }
    let refused = c.call("DELETE", "/photos").await;
    assert_error(&refused, 409, "BucketNotEmpty");
    let reply = c.call("DELETE", "/photos/m.txt").await;
    assert_eq!(reply.status, 204);
    let deleted = c.call("DELETE", "/photos").await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
}

#[tokio::test]
async fn e2e_continuation_tokens_survive_a_range_move() {
    // Range 2 is on B for the first page, then moves to A.
    let stamp = three_ranges().await;
    let c = &stamp.client;
    let first = c
        .query("GET", "/photos", &[("list-type", "2"), ("max-keys", "6")])
        .await;
    let text = first.text();
    let mut listed = fields_in(&text, "Contents", "Key");
    assert_eq!(listed.last().map(String::as_str), Some("logs/n"), "{text}");
    // Range 2 moves from B to A: A now serves one contiguous run, B answers NotOwner.
    stamp.move_range(&bounds().0, 0).await;
    let mut token = field(&text, "NextContinuationToken").unwrap();
    for _ in 0..100 {
        let reply = c
            .query(
                "GET",
                "/photos",
                &[
                    ("list-type", "2"),
                    ("max-keys", "3"),
                    ("continuation-token", token.as_str()),
                ],
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let text = reply.text();
        listed.extend(fields_in(&text, "Contents", "Key"));
        match field(&text, "NextContinuationToken") {
            Some(next) => token = next,
            None => break,
        }
    }
    assert_eq!(listed, all_keys());
}
