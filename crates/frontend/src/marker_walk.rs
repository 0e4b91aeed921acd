//! One walk for the listings paged by two markers, a key and a second marker after it (a
//! version id for ListObjectVersions, an upload id for ListMultipartUploads).
//!
//! Both list records of a bucket in key order, possibly spread over several ranges and servers:
//! the walk goes stretch by stretch ([`Stretches`]), asks each owner for one more item than it
//! still needs (to know whether the page is truncated), drops a common prefix a server sends
//! again when it resumes inside it, and moves the markers past what it listed, so no run sends
//! an item or a prefix twice. [`walk_owners`] is that walk with each call sent to the owner
//! of its start key through the router (retried across owners as the router does).

use crate::error::FrontendError;
use crate::routing::{PartitionClient, Router};
use crate::stretches::{Covered, Stretches};
use std::future::Future;
use strata_proto::partition::{
    ListMultipartUploadsResponse, ListObjectVersionsResponse, ListedUpload, ListedVersion,
};
use strata_types::keys;
use tonic::{Response, Status};

/// One listed record or common prefix.
pub trait MarkedItem: Clone {
    fn key(&self) -> &str;
    /// Non-empty when this item is a common prefix.
    fn common_prefix(&self) -> &str;
    /// The second marker that resumes right after this (non-prefix) item.
    fn second_marker(&self) -> String;
}

/// One owner's answer.
pub trait MarkedPage: Covered {
    type Item: MarkedItem;
    fn items(&self) -> &[Self::Item];
    fn truncated(&self) -> bool;
}

/// What one call to an owner asks for.
pub struct MarkerCall {
    pub key_marker: String,
    pub second_marker: String,
    /// Items wanted at most.
    pub items_max: u32,
    /// Where the call routes and starts: the owner of this key answers.
    pub from: Vec<u8>,
}

/// One page to list.
pub struct MarkerQuery<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    /// The client's markers (the second is ignored by the caller when it must be).
    pub key_marker: &'a str,
    pub second_marker: String,
    /// Items on the page at most.
    pub limit: usize,
}

/// Lists one page: the items (at most `limit`) and whether more follow.
pub async fn walk_markers<P, F, Fut>(
    query: MarkerQuery<'_>,
    mut fetch: F,
) -> Result<(Vec<P::Item>, bool), FrontendError>
where
    P: MarkedPage,
    F: FnMut(MarkerCall) -> Fut,
    Fut: Future<Output = Result<P, FrontendError>>,
{
    let bucket = query.bucket;
    let low = keys::object_key(bucket, query.prefix);
    let high = keys::prefix_end(&low).unwrap_or_default();
    // One more than shown, to know whether the listing is truncated.
    let want = query.limit + 1;
    let mut items: Vec<P::Item> = Vec::new();
    let mut marker = (query.key_marker.to_string(), query.second_marker);
    let start = if query.key_marker.is_empty() {
        low.clone()
    } else {
        low.clone().max(keys::object_key(bucket, query.key_marker))
    };
    let mut stretches = Stretches::new(start, high);
    while let Some(from) = stretches.next_from()? {
        let call = MarkerCall {
            key_marker: marker.0.clone(),
            second_marker: marker.1.clone(),
            items_max: u32::try_from(want - items.len()).unwrap_or(u32::MAX),
            from: from.clone(),
        };
        let page = fetch(call).await?;
        for item in page.items() {
            let repeated = !item.common_prefix().is_empty()
                && items
                    .last()
                    .is_some_and(|last| last.common_prefix() == item.common_prefix());
            if !repeated {
                items.push(item.clone());
            }
        }
        // Where the next call resumes, within this run (truncated) or past it.
        let resume = match items.last() {
            Some(last) if last.common_prefix().is_empty() => {
                marker = (last.key().to_string(), last.second_marker());
                Some(keys::object_key(bucket, last.key()))
            }
            Some(last) => {
                marker = (last.common_prefix().to_string(), String::new());
                keys::prefix_end(&keys::object_key(bucket, last.common_prefix()))
            }
            None => Some(from),
        };
        if items.len() >= want {
            break;
        }
        let Some(resume) = resume else { break };
        if page.truncated() {
            stretches.resume_at(resume);
        } else {
            stretches.covered(&page, Some(resume))?;
        }
    }
    let truncated = items.len() > query.limit;
    items.truncate(query.limit);
    Ok((items, truncated))
}

/// Lists one page by [`walk_markers`], asking each stretch's owner: `request` makes the call's
/// request, `rpc` sends it on a partition server client. The router routes by the call's `from`
/// and retries the call (with a copy of the request) on another owner when it must.
pub async fn walk_owners<P, Req, MakeRequest, Rpc, Fut>(
    router: &Router,
    query: MarkerQuery<'_>,
    request: MakeRequest,
    rpc: Rpc,
) -> Result<(Vec<P::Item>, bool), FrontendError>
where
    P: MarkedPage,
    Req: Clone,
    MakeRequest: Fn(MarkerCall) -> Req,
    Rpc: Fn(PartitionClient, Req) -> Fut,
    Fut: Future<Output = Result<Response<P>, Status>>,
{
    let rpc = &rpc;
    walk_markers(query, |call| {
        let from = call.from.clone();
        let request = request(call);
        async move {
            let (response, _) = router
                .call(&from, false, |client, _| rpc(client, request.clone()))
                .await?;
            Ok(response.into_inner())
        }
    })
    .await
}

impl MarkedPage for ListObjectVersionsResponse {
    type Item = ListedVersion;
    fn items(&self) -> &[ListedVersion] {
        &self.items
    }
    fn truncated(&self) -> bool {
        self.truncated
    }
}

impl MarkedPage for ListMultipartUploadsResponse {
    type Item = ListedUpload;
    fn items(&self) -> &[ListedUpload] {
        &self.items
    }
    fn truncated(&self) -> bool {
        self.truncated
    }
}

impl MarkedItem for ListedUpload {
    fn key(&self) -> &str {
        &self.key
    }
    fn common_prefix(&self) -> &str {
        &self.common_prefix
    }
    fn second_marker(&self) -> String {
        self.upload
            .as_ref()
            .map(|u| u.upload_id.clone())
            .unwrap_or_default()
    }
}
