//! Object and bucket tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging, and
//! the `x-amz-tagging` header of PutObject, CreateMultipartUpload and CopyObject.
//!
//! S3's limits are checked here, before anything is stored (InvalidTag): at most 10 tags per
//! object and 50 per bucket, keys of 1 to 128 and values of at most 256 characters, no key twice.
//! Object tags live in the object's index entry (the owner replaces them atomically), bucket
//! tags in the bucket record.

use crate::error::{FrontendError, Refusal};
use crate::frontend::{is_no_such_key, no_such_key, Frontend};
use s3s::dto::{Tag, Tagging};
use s3s::S3Result;
use std::collections::HashMap;
use strata_proto::partition::{update_bucket_request, PutObjectTagsRequest, TagSet};
use strata_types::keys;

pub use strata_types::limits::{BUCKET_TAGS_MAX, OBJECT_TAGS_MAX};
use strata_types::limits::{TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX};

fn invalid_tag(message: &str) -> s3s::S3Error {
    FrontendError::refused(Refusal::InvalidTag, message).into()
}

/// Checks a list of (key, value) tags against S3's rules and makes it a map.
pub fn tags_of(pairs: Vec<(String, String)>, max: usize) -> S3Result<HashMap<String, String>> {
    if pairs.len() > max {
        return Err(invalid_tag(&format!(
            "Object tags cannot be greater than {max}"
        )));
    }
    let mut tags = HashMap::with_capacity(pairs.len());
    for (key, value) in pairs {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > TAG_KEY_CHARS_MAX {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if value.chars().count() > TAG_VALUE_CHARS_MAX {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if key.starts_with("aws:") {
            return Err(invalid_tag("Your TagKey cannot be prefixed with aws:"));
        }
        if tags.insert(key, value).is_some() {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(tags)
}

/// The tags of an XML `Tagging` body.
pub fn tags_of_xml(tagging: &Tagging, max: usize) -> S3Result<HashMap<String, String>> {
    let pairs = tagging
        .tag_set
        .iter()
        .map(|tag| {
            (
                tag.key.clone().unwrap_or_default(),
                tag.value.clone().unwrap_or_default(),
            )
        })
        .collect();
    tags_of(pairs, max)
}

/// The tags of an `x-amz-tagging` header (URL query encoding: `k1=v1&k2=v2`).
pub fn tags_of_header(header: Option<&str>) -> S3Result<HashMap<String, String>> {
    let Some(header) = header.filter(|h| !h.is_empty()) else {
        return Ok(HashMap::new());
    };
    let mut pairs = Vec::new();
    for pair in header.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| {
            urlencoding::decode(&text.replace('+', " "))
                .map(|s| s.into_owned())
                .map_err(|_| invalid_tag("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."))
        };
        pairs.push((decode(key)?, decode(value)?));
    }
    tags_of(pairs, OBJECT_TAGS_MAX)
}

/// Tags as the XML `TagSet`, sorted by key so answers are stable.
pub fn tag_set(tags: &HashMap<String, String>) -> Vec<Tag> {
    let mut sorted: Vec<(&String, &String)> = tags.iter().collect();
    sorted.sort();
    sorted
        .into_iter()
        .map(|(key, value)| Tag {
            key: Some(key.clone()),
            value: Some(value.clone()),
        })
        .collect()
}

impl Frontend {
    /// Replaces the tags of an object (empty deletes them all).
    pub(crate) async fn put_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: HashMap<String, String>,
    ) -> S3Result<()> {
        self.require_bucket(bucket).await?;
        let request = PutObjectTagsRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version_id.unwrap_or_default().to_string(),
            tags,
        };
        let result = self
            .router
            .call(&keys::object_key(bucket, key), false, |mut client, _| {
                let request = request.clone();
                async move {
                    client
                        .put_object_tags(request)
                        .await
                        .map(|r| r.into_inner())
                }
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(crate::FrontendError::Rpc(status)) if is_no_such_key(&status) => Err(no_such_key()),
            Err(err) => Err(err.into()),
        }
    }

    /// The tags of an object.
    pub(crate) async fn object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<HashMap<String, String>> {
        self.require_bucket(bucket).await?;
        let meta = match self.head_version(bucket, key, version_id).await? {
            Some(meta) if meta.delete_marker && version_id.is_some() => {
                return Err(FrontendError::refused(
                    Refusal::MethodNotAllowed,
                    "The specified method is not allowed against this resource.",
                )
                .into())
            }
            Some(meta) if !meta.delete_marker => meta,
            _ if version_id.is_some() => return Err(crate::frontend::no_such_version()),
            _ => return Err(no_such_key()),
        };
        Ok(meta.tags)
    }

    /// Replaces the bucket's tags (empty deletes them).
    pub(crate) async fn put_bucket_tags(
        &self,
        bucket: &str,
        tags: HashMap<String, String>,
    ) -> S3Result<()> {
        self.update_bucket(bucket, update_bucket_request::Change::Tags(TagSet { tags }))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tags_decode_and_are_checked() {
        let tags = tags_of_header(Some("project=blue%20sky&empty=&a+b=c")).unwrap();
        assert_eq!(tags["project"], "blue sky");
        assert_eq!(tags["empty"], "");
        assert_eq!(tags["a b"], "c");
        assert!(tags_of_header(None).unwrap().is_empty());
        assert!(tags_of_header(Some("k=1&k=2")).is_err());
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(tags_of_header(Some(&eleven.join("&"))).is_err());
        let long_key = format!("{}=v", "k".repeat(129));
        assert!(tags_of_header(Some(&long_key)).is_err());
        assert!(tags_of_header(Some("aws:x=1")).is_err());
    }

    #[test]
    fn tag_sets_are_sorted() {
        let tags = tags_of(
            vec![("b".into(), "2".into()), ("a".into(), "1".into())],
            OBJECT_TAGS_MAX,
        )
        .unwrap();
        let keys: Vec<_> = tag_set(&tags).into_iter().map(|t| t.key.unwrap()).collect();
        assert_eq!(keys, ["a", "b"]);
    }
}
