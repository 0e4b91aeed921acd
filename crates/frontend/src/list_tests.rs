//! Tests of the listing core against an in-memory partitioned key space, and of the XML the
//! list operations produce (serialized by s3s).

use super::*;
use strata_proto::partition::{ListEntry, ListItem};

/// Partition servers in memory: each range holds the keys whose encoded form it contains and
/// answers ListObjects the way the proto describes (keys after start_after, rolled up under
/// the delimiter, at most max_keys, truncated when its range has more).
struct FakeRanges {
    bucket: String,
    /// (low, high, owner's calls)
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    keys: Vec<String>,
    calls: usize,
}

impl FakeRanges {
    fn new(bucket: &str, splits: &[&str], keys: &[&str]) -> Self {
        let mut bounds: Vec<Vec<u8>> = vec![Vec::new()];
        bounds.extend(splits.iter().map(|s| keys::object_key(bucket, s)));
        bounds.push(Vec::new());
        let ranges = bounds
            .windows(2)
            .map(|w| (w[0].clone(), w[1].clone()))
            .collect();
        let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        keys.sort();
        Self {
            bucket: bucket.into(),
            ranges,
            keys,
            calls: 0,
        }
    }
}

#[async_trait::async_trait]
impl RangeLister for FakeRanges {
    async fn list(
        &mut self,
        request: ListObjectsRequest,
    ) -> Result<ListObjectsResponse, FrontendError> {
        self.calls += 1;
        let position = request.from.as_slice();
        let (low, high) = self
            .ranges
            .iter()
            .find(|(low, high)| keys::range_contains(low, high, position))
            .cloned()
            .ok_or_else(|| FrontendError::Unavailable("no range".into()))?;
        let delimiter = (!request.delimiter.is_empty()).then_some(request.delimiter.as_str());
        let mut items = Vec::new();
        let mut truncated = false;
        let mut last_prefix: Option<String> = None;
        for key in &self.keys {
            let encoded = keys::object_key(&self.bucket, key);
            if !keys::range_contains(&low, &high, &encoded)
                || encoded.as_slice() < position
                || key.as_str() <= request.start_after.as_str()
            {
                continue;
            }
            if !key.starts_with(request.prefix.as_str()) {
                continue;
            }
            let item = match common_prefix_of(key, &request.prefix, delimiter) {
                Some(prefix) if last_prefix.as_deref() == Some(prefix.as_str()) => continue,
                Some(prefix) => {
                    last_prefix = Some(prefix.clone());
                    ListItem {
                        entry: None,
                        common_prefix: prefix,
                    }
                }
                None => ListItem {
                    entry: Some(ListEntry {
                        key: key.clone(),
                        meta: Some(ObjectMeta {
                            size_bytes: key.len() as u64,
                            etag: format!("\"etag-{key}\""),
                            last_modified_ms: 1_369_353_600_000,
                            ..Default::default()
                        }),
                    }),
                    common_prefix: String::new(),
                },
            };
            if items.len() == request.max_keys as usize {
                truncated = true;
                break;
            }
            items.push(item);
        }
        // Every range on its own server: a run of one range.
        Ok(ListObjectsResponse {
            items,
            truncated,
            covered_to_end: !truncated && high.is_empty(),
            covered_until: if truncated { Vec::new() } else { high },
        })
    }
}

fn names(page: &ListPage) -> Vec<String> {
    page.items
        .iter()
        .map(|item| match item {
            Listed::Object { key, .. } => key.clone(),
            Listed::Prefix(prefix) => format!("P:{prefix}"),
        })
        .collect()
}

const KEYS: &[&str] = &[
    "a.txt",
    "dir/a",
    "dir/b",
    "dir/c",
    "dir/sub/x",
    "e.txt",
    "logs/1",
    "logs/2",
    "z.txt",
];

async fn page_through(
    lister: &mut FakeRanges,
    prefix: &str,
    delimiter: Option<&str>,
    max_keys: usize,
) -> Vec<String> {
    let mut all = Vec::new();
    let mut after = Cursor::default();
    for _ in 0..100 {
        let query = ListQuery {
            bucket: "bkt".into(),
            prefix: prefix.into(),
            delimiter: delimiter.map(str::to_string),
            after: after.clone(),
            max_keys,
        };
        let page = walk(lister, &query).await.unwrap();
        all.extend(names(&page));
        if !page.truncated {
            return all;
        }
        let token = encode_token(page.items.last().unwrap().name());
        after = Cursor::resume(&decode_token(&token).unwrap(), prefix, delimiter);
    }
    panic!("listing did not end");
}

#[tokio::test]
async fn one_range_and_many_ranges_list_the_same() {
    let mut single = FakeRanges::new("bkt", &[], KEYS);
    // Splits inside "dir/" so that one common prefix spans two ranges, and inside "logs/".
    let mut split = FakeRanges::new("bkt", &["dir/b", "dir/sub", "logs/2"], KEYS);
    for (prefix, delimiter) in [
        ("", None),
        ("", Some("/")),
        ("dir/", Some("/")),
        ("dir/", None),
        ("nope", Some("/")),
    ] {
        for max_keys in [1, 2, 3, 1000] {
            let expected = page_through(&mut single, prefix, delimiter, 1000).await;
            assert_eq!(
                page_through(&mut single, prefix, delimiter, max_keys).await,
                expected,
                "{prefix:?} {delimiter:?} {max_keys}"
            );
            assert_eq!(
                page_through(&mut split, prefix, delimiter, max_keys).await,
                expected,
                "{prefix:?} {delimiter:?} {max_keys}"
            );
        }
    }
    let expected = page_through(&mut split, "", Some("/"), 1000).await;
    assert_eq!(
        expected,
        vec!["a.txt", "P:dir/", "e.txt", "P:logs/", "z.txt"]
    );
    let expected = page_through(&mut split, "dir/", Some("/"), 1000).await;
    assert_eq!(expected, vec!["dir/a", "dir/b", "dir/c", "P:dir/sub/"]);
}

#[tokio::test]
async fn a_common_prefix_spanning_two_ranges_is_returned_once() {
    let mut split = FakeRanges::new("bkt", &["dir/b"], KEYS);
    let query = ListQuery {
        bucket: "bkt".into(),
        delimiter: Some("/".into()),
        max_keys: 1000,
        ..Default::default()
    };
    let page = walk(&mut split, &query).await.unwrap();
    assert_eq!(
        names(&page),
        vec!["a.txt", "P:dir/", "e.txt", "P:logs/", "z.txt"]
    );
    assert!(!page.truncated);
    assert!(split.calls >= 2, "both ranges were asked");
}

#[tokio::test]
async fn start_after_and_truncation() {
    let mut split = FakeRanges::new("bkt", &["e"], KEYS);
    let query = ListQuery {
        bucket: "bkt".into(),
        after: Cursor {
            name: "dir/b".into(),
            past_prefix: false,
        },
        max_keys: 3,
        ..Default::default()
    };
    let page = walk(&mut split, &query).await.unwrap();
    assert_eq!(names(&page), vec!["dir/c", "dir/sub/x", "e.txt"]);
    assert!(page.truncated);
    let zero = ListQuery {
        bucket: "bkt".into(),
        max_keys: 0,
        ..Default::default()
    };
    assert_eq!(walk(&mut split, &zero).await.unwrap(), ListPage::default());
}

#[test]
fn tokens_and_url_encoding() {
    assert_eq!(decode_token(&encode_token("dir/a b")).unwrap(), "dir/a b");
    assert!(decode_token("%%%").is_err());
    assert_eq!(url_encode("dir/a b+c&d.txt"), "dir/a%20b%2Bc%26d.txt");
    assert_eq!(
        common_prefix_of("dir/sub/x", "dir/", Some("/")),
        Some("dir/sub/".into())
    );
    assert_eq!(common_prefix_of("dir/x", "dir/", Some("/")), None);
    assert_eq!(common_prefix_of("dir/x", "dir/", None), None);
    assert_eq!(max_keys_of(None).unwrap(), 1000);
    assert_eq!(max_keys_of(Some(5000)).unwrap(), 1000);
    assert!(max_keys_of(Some(-1)).is_err());
}

fn to_xml(output: &impl s3s::xml::Serialize) -> String {
    let mut buffer = Vec::new();
    let mut serializer = s3s::xml::Serializer::new(&mut buffer);
    serializer.decl().unwrap();
    output.serialize(&mut serializer).unwrap();
    String::from_utf8(buffer).unwrap()
}

#[test]
fn list_v2_xml_with_url_encoding_and_common_prefixes() {
    let page = ListPage {
        items: vec![
            Listed::Object {
                key: "my dir/a+b.txt".into(),
                meta: Box::new(ObjectMeta {
                    size_bytes: 11,
                    etag: "\"9b2cf535f27731c974343645a3985328\"".into(),
                    last_modified_ms: 1_369_353_600_000,
                    ..Default::default()
                }),
            },
            Listed::Prefix("my dir/sub dir/".into()),
        ],
        truncated: true,
    };
    let echo = V2Echo {
        bucket: "bkt".into(),
        prefix: "my dir/".into(),
        delimiter: Some("/".into()),
        max_keys: 2,
        start_after: Some("my dir/0 0".into()),
        encoding_type: Some(EncodingType::from_static(EncodingType::URL)),
        ..Default::default()
    };
    let xml = to_xml(&v2_output(&echo, &page));
    let expected_parts = [
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
        "<Name>bkt</Name>",
        "<Prefix>my%20dir/</Prefix>",
        "<MaxKeys>2</MaxKeys>",
        "<KeyCount>2</KeyCount>",
        "<IsTruncated>true</IsTruncated>",
        &format!("<NextContinuationToken>{}</NextContinuationToken>", encode_token("my dir/sub dir/")),
        "<Contents><ETag>\"9b2cf535f27731c974343645a3985328\"</ETag><Key>my%20dir/a%2Bb.txt</Key><LastModified>2013-05-24T00:00:00.000Z</LastModified><Size>11</Size><StorageClass>STANDARD</StorageClass></Contents>",
        "<CommonPrefixes><Prefix>my%20dir/sub%20dir/</Prefix></CommonPrefixes>",
        "<Delimiter>/</Delimiter>",
        "<EncodingType>url</EncodingType>",
        "<StartAfter>my%20dir/0%200</StartAfter>",
    ];
    for part in expected_parts {
        assert!(xml.contains(part), "missing {part}\nin {xml}");
    }
    assert!(!xml.contains("<Owner>"), "no owner without fetch-owner");
    assert!(!xml.contains("<ContinuationToken>"));
}

#[test]
fn list_v2_xml_plain_with_owner() {
    let page = ListPage {
        items: vec![Listed::Object {
            key: "a b".into(),
            meta: Box::default(),
        }],
        truncated: false,
    };
    let echo = V2Echo {
        bucket: "bkt".into(),
        max_keys: 1000,
        continuation_token: Some("dG9rZW4=".into()),
        owner: Some(crate::bucket::owner("AKID")),
        ..Default::default()
    };
    let xml = to_xml(&v2_output(&echo, &page));
    assert!(xml.contains("<Key>a b</Key>"), "{xml}");
    assert!(
        xml.contains("<Owner><DisplayName>AKID</DisplayName><ID>AKID</ID></Owner>"),
        "{xml}"
    );
    assert!(
        xml.contains("<ContinuationToken>dG9rZW4=</ContinuationToken>"),
        "{xml}"
    );
    assert!(xml.contains("<IsTruncated>false</IsTruncated>"), "{xml}");
    assert!(!xml.contains("NextContinuationToken"), "{xml}");
    assert!(
        xml.contains("<Prefix></Prefix>") || xml.contains("<Prefix/>"),
        "{xml}"
    );
}
