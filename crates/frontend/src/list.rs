//! ListObjectsV2 and ListObjects (v1), sharing one listing core that walks ranges.
//!
//! A bucket's keys under a prefix span `[object_prefix(bucket)+prefix, prefix_end)`, which can
//! cross several ranges and servers. The walk (`stretches.rs`) asks the owner of the current
//! position for keys strictly after the cursor within its contiguous run of ranges, appends
//! what comes back in key order, and goes on where that run ended. One common prefix can
//! span two ranges; the walk never emits one twice (and never re-emits, on a continued page,
//! the common prefix the previous page ended with).

use crate::error::{FrontendError, Refusal};
use crate::frontend::Frontend;
use crate::meta::{size_i64, timestamp_from_ms};
use crate::routing::Router;
use crate::stretches::Stretches;
use base64::Engine;
use s3s::dto::{
    CommonPrefix, EncodingType, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, Object, ObjectStorageClass, Owner,
};
use s3s::S3Result;
use strata_proto::common::ObjectMeta;
use strata_proto::partition::{ListObjectsRequest, ListObjectsResponse};
use strata_types::keys;

/// S3's default and largest page.
pub use strata_types::limits::LIST_KEYS_MAX as MAX_KEYS_DEFAULT;

/// One listing request in the key space of one bucket.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub bucket: String,
    pub prefix: String,
    /// None, or a non-empty delimiter.
    pub delimiter: Option<String>,
    /// Where the previous page ended (a key, or a common prefix: see [`Cursor`]).
    pub after: Cursor,
    pub max_keys: usize,
}

/// Where a listing resumes: after a key, or after everything under a common prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The last key or common prefix returned (empty: from the start).
    pub name: String,
    /// True when `name` is a common prefix already returned: nothing under it comes again.
    pub past_prefix: bool,
}

impl Cursor {
    /// Resumes after `name` as a continuation token or v1 marker names it: under a delimiter
    /// a name containing the delimiter (after the prefix) was a common prefix.
    pub fn resume(name: &str, prefix: &str, delimiter: Option<&str>) -> Self {
        match common_prefix_of(name, prefix, delimiter) {
            Some(common) => Cursor {
                name: common,
                past_prefix: true,
            },
            None => Cursor {
                name: name.to_string(),
                past_prefix: false,
            },
        }
    }

    /// Whether an item comes strictly after this cursor.
    fn precedes(&self, item: &Listed) -> bool {
        let name = item.name();
        if self.past_prefix && name.starts_with(self.name.as_str()) {
            return false;
        }
        match item {
            Listed::Object { .. } => name > self.name.as_str(),
            // A common prefix that contains the cursor still has keys after it.
            Listed::Prefix(prefix) => {
                name > self.name.as_str()
                    || (!self.past_prefix && self.name.starts_with(prefix.as_str()))
            }
        }
    }

    fn advance(&mut self, item: &Listed) {
        self.past_prefix = matches!(item, Listed::Prefix(_));
        self.name = item.name().to_string();
    }

    /// The routing position of the first key that can follow.
    fn position(&self, bucket: &str, low: &[u8]) -> Vec<u8> {
        if self.name.is_empty() {
            return low.to_vec();
        }
        let next = if self.past_prefix {
            keys::prefix_end(&keys::object_key(bucket, &self.name)).unwrap_or_default()
        } else {
            let mut next = keys::object_key(bucket, &self.name);
            next.push(0);
            next
        };
        std::cmp::max(next, low.to_vec())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Listed {
    Object { key: String, meta: Box<ObjectMeta> },
    Prefix(String),
}

impl Listed {
    pub fn name(&self) -> &str {
        match self {
            Listed::Object { key, .. } => key,
            Listed::Prefix(prefix) => prefix,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListPage {
    pub items: Vec<Listed>,
    pub truncated: bool,
}

/// One partition call, routed to the owner of `request.from`.
#[async_trait::async_trait]
pub trait RangeLister: Send {
    async fn list(
        &mut self,
        request: ListObjectsRequest,
    ) -> Result<ListObjectsResponse, FrontendError>;
}

pub struct RouterLister<'a>(pub &'a Router);

#[async_trait::async_trait]
impl RangeLister for RouterLister<'_> {
    async fn list(
        &mut self,
        request: ListObjectsRequest,
    ) -> Result<ListObjectsResponse, FrontendError> {
        let from = request.from.clone();
        let (response, _) = self
            .0
            .call(&from, false, |mut client, _| {
                let request = request.clone();
                async move { client.list_objects(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(response)
    }
}

/// The common prefix `name` rolls up to under `prefix` and `delimiter`, if any.
pub fn common_prefix_of(name: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let delimiter = delimiter?;
    let rest = name.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(format!("{prefix}{}", &rest[..at + delimiter.len()]))
}

/// Walks the ranges for one page of `query`.
pub async fn walk(
    lister: &mut impl RangeLister,
    query: &ListQuery,
) -> Result<ListPage, FrontendError> {
    if query.max_keys == 0 {
        return Ok(ListPage::default());
    }
    let mut low = keys::object_prefix(&query.bucket);
    low.extend_from_slice(query.prefix.as_bytes());
    let high = keys::prefix_end(&low).unwrap_or_default();
    let want = query.max_keys + 1;
    let mut items: Vec<Listed> = Vec::new();
    let mut cursor = query.after.clone();
    let start = cursor.position(&query.bucket, &low);
    if start.is_empty() {
        return Ok(ListPage::default());
    }
    let mut stretches = Stretches::new(start, high);
    while let Some(from) = stretches.next_from()? {
        // One more than needed: a server resuming after a common prefix sends it again first.
        let request = ListObjectsRequest {
            bucket: query.bucket.clone(),
            prefix: query.prefix.clone(),
            delimiter: query.delimiter.clone().unwrap_or_default(),
            start_after: cursor.name.clone(),
            max_keys: u32::try_from(want - items.len() + 1).unwrap_or(u32::MAX),
            from,
        };
        let response = lister.list(request).await?;
        for item in &response.items {
            let listed = match (&item.entry, &item.common_prefix) {
                (Some(entry), _) => Listed::Object {
                    key: entry.key.clone(),
                    meta: Box::new(entry.meta.clone().unwrap_or_default()),
                },
                (None, prefix) if !prefix.is_empty() => Listed::Prefix(prefix.clone()),
                _ => continue,
            };
            if !listed.name().starts_with(query.prefix.as_str()) || !cursor.precedes(&listed) {
                continue;
            }
            cursor.advance(&listed);
            items.push(listed);
            if items.len() >= want {
                break;
            }
        }
        if items.len() >= want {
            break;
        }
        let next = cursor.position(&query.bucket, &low);
        if next.is_empty() {
            break; // past a common prefix that runs to the end of the key space
        }
        if response.truncated {
            stretches.resume_at(next);
        } else {
            stretches.covered(&response, Some(next))?;
        }
    }
    let truncated = items.len() > query.max_keys;
    items.truncate(query.max_keys);
    Ok(ListPage { items, truncated })
}

/// S3's `encoding-type=url`: percent-encoding that keeps `/`.
pub fn url_encode(value: &str) -> String {
    value
        .split('/')
        .map(|segment| urlencoding::encode(segment).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

pub fn encode_token(name: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(name.as_bytes())
}

pub fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::STANDARD
        .decode(token.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            FrontendError::refused(
                Refusal::InvalidArgument,
                "The continuation token provided is incorrect",
            )
            .into()
        })
}

fn max_keys_of(max_keys: Option<i32>) -> S3Result<usize> {
    match max_keys {
        None => Ok(MAX_KEYS_DEFAULT),
        Some(n) if n < 0 => Err(FrontendError::refused(
            Refusal::InvalidArgument,
            "max-keys must not be negative",
        )
        .into()),
        Some(n) => Ok(usize::try_from(n)
            .unwrap_or(MAX_KEYS_DEFAULT)
            .min(MAX_KEYS_DEFAULT)),
    }
}

/// S3's `encoding-type`: `url` or none; anything else is InvalidArgument.
pub(crate) fn wants_url(encoding_type: Option<&EncodingType>) -> S3Result<bool> {
    match encoding_type.map(EncodingType::as_str) {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(_) => Err(FrontendError::refused(
            Refusal::InvalidArgument,
            "Invalid Encoding Method specified in Request",
        )
        .into()),
    }
}

/// How names appear in the XML: raw, or url-encoded.
struct Names {
    url: bool,
}

impl Names {
    fn show(&self, value: &str) -> String {
        if self.url {
            url_encode(value)
        } else {
            value.to_string()
        }
    }
}

fn split(
    page: &ListPage,
    names: &Names,
    owner: Option<&Owner>,
) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for item in &page.items {
        match item {
            Listed::Object { key, meta } => contents.push(Object {
                key: Some(names.show(key)),
                last_modified: Some(timestamp_from_ms(meta.last_modified_ms)),
                e_tag: Some(crate::conditions::to_s3_etag(&meta.etag)),
                size: Some(size_i64(meta.size_bytes)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                owner: owner.cloned(),
                ..Default::default()
            }),
            Listed::Prefix(prefix) => prefixes.push(CommonPrefix {
                prefix: Some(names.show(prefix)),
            }),
        }
    }
    (contents, prefixes)
}

/// The parameters of a V2 listing as the client sent them.
#[derive(Clone, Debug, Default)]
pub struct V2Echo {
    pub bucket: String,
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_keys: usize,
    pub continuation_token: Option<String>,
    pub start_after: Option<String>,
    pub encoding_type: Option<EncodingType>,
    pub owner: Option<Owner>,
}

/// Builds the ListObjectsV2 result from one page.
pub fn v2_output(echo: &V2Echo, page: &ListPage) -> ListObjectsV2Output {
    let names = Names {
        url: echo
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == "url"),
    };
    let (contents, prefixes) = split(page, &names, echo.owner.as_ref());
    let key_count = contents.len() + prefixes.len();
    let next_continuation_token = page
        .truncated
        .then(|| page.items.last().map(|item| encode_token(item.name())))
        .flatten();
    ListObjectsV2Output {
        name: Some(echo.bucket.clone()),
        prefix: Some(names.show(&echo.prefix)),
        delimiter: echo.delimiter.as_deref().map(|d| names.show(d)),
        max_keys: Some(i32::try_from(echo.max_keys).unwrap_or(i32::MAX)),
        key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
        is_truncated: Some(page.truncated),
        continuation_token: echo.continuation_token.clone(),
        next_continuation_token,
        start_after: echo.start_after.as_deref().map(|s| names.show(s)),
        encoding_type: echo.encoding_type.clone(),
        contents: (!contents.is_empty()).then_some(contents),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        ..Default::default()
    }
}

fn non_empty_delimiter(delimiter: Option<&String>) -> Option<String> {
    delimiter.filter(|d| !d.is_empty()).cloned()
}

impl Frontend {
    pub(crate) async fn list_objects_v2_op(
        &self,
        input: &ListObjectsV2Input,
        requester: &str,
    ) -> S3Result<ListObjectsV2Output> {
        self.require_bucket(&input.bucket).await?;
        let max_keys = max_keys_of(input.max_keys)?;
        wants_url(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = non_empty_delimiter(input.delimiter.as_ref());
        let mut query = ListQuery {
            bucket: input.bucket.clone(),
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
            max_keys,
            ..Default::default()
        };
        if let Some(token) = input.continuation_token.as_deref() {
            query.after = Cursor::resume(&decode_token(token)?, &prefix, delimiter.as_deref());
        } else if let Some(start_after) = input.start_after.as_deref() {
            query.after = Cursor {
                name: start_after.to_string(),
                past_prefix: false,
            };
        }
        let page = walk(&mut RouterLister(&self.router), &query).await?;
        let echo = V2Echo {
            bucket: input.bucket.clone(),
            prefix,
            delimiter,
            max_keys,
            continuation_token: input.continuation_token.clone(),
            start_after: input.start_after.clone(),
            encoding_type: input.encoding_type.clone(),
            owner: input
                .fetch_owner
                .unwrap_or(false)
                .then(|| crate::bucket::owner(requester)),
        };
        Ok(v2_output(&echo, &page))
    }

    pub(crate) async fn list_objects_v1_op(
        &self,
        input: &ListObjectsInput,
        requester: &str,
    ) -> S3Result<ListObjectsOutput> {
        self.require_bucket(&input.bucket).await?;
        let max_keys = max_keys_of(input.max_keys)?;
        let url = wants_url(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = non_empty_delimiter(input.delimiter.as_ref());
        let marker = input.marker.clone().filter(|m| !m.is_empty());
        let query = ListQuery {
            bucket: input.bucket.clone(),
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
            after: marker
                .as_deref()
                .map(|m| Cursor::resume(m, &prefix, delimiter.as_deref()))
                .unwrap_or_default(),
            max_keys,
        };
        let page = walk(&mut RouterLister(&self.router), &query).await?;
        let names = Names { url };
        let owner = crate::bucket::owner(requester);
        let (contents, prefixes) = split(&page, &names, Some(&owner));
        // S3 returns NextMarker only when a delimiter was given.
        let next_marker = (page.truncated && delimiter.is_some())
            .then(|| page.items.last().map(|item| names.show(item.name())))
            .flatten();
        Ok(ListObjectsOutput {
            name: Some(input.bucket.clone()),
            prefix: Some(names.show(&prefix)),
            marker: Some(names.show(marker.as_deref().unwrap_or_default())),
            max_keys: Some(i32::try_from(max_keys).unwrap_or(i32::MAX)),
            is_truncated: Some(page.truncated),
            delimiter: delimiter.as_deref().map(|d| names.show(d)),
            next_marker,
            encoding_type: input.encoding_type.clone(),
            contents: (!contents.is_empty()).then_some(contents),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            ..Default::default()
        })
    }
}

#[cfg(test)]
#[path = "list_tests.rs"]
mod tests;
