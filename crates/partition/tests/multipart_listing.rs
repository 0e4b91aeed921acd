//! ListMultipartUploads pages by `max_uploads` with and without a delimiter: an answer holds at
//! most `max_uploads` items and says `truncated` when more remain, and the next page (from the
//! markers of the last item) goes on where the previous one stopped. Runs against a real
//! partition server over gRPC on a real stream layer in process.

mod common;

use common::create_upload;
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::{ListMultipartUploadsRequest, ListMultipartUploadsResponse};
use strata_util::rpc::Channel;

const EXTENT_BYTES: u64 = 1 << 20;

async fn list(
    client: &mut PartitionServerClient<Channel>,
    request: ListMultipartUploadsRequest,
) -> ListMultipartUploadsResponse {
    client
        .list_multipart_uploads(request)
        .await
        .unwrap()
        .into_inner()
}

/// An answer's items as "key" for uploads and "P:prefix" for common prefixes.
fn listed(answer: &ListMultipartUploadsResponse) -> Vec<String> {
    answer
        .items
        .iter()
        .map(|item| match &item.upload {
            Some(_) => item.key.clone(),
            None => format!("P:{}", item.common_prefix),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_page_by_max_uploads_with_and_without_a_delimiter() {
    let layer = common::stream_layer(EXTENT_BYTES).await;
    let (mut client, _state, _token) = common::serve_range(&layer, "A", 1).await;
    for key in ["a", "b", "c", "d/1", "d/2"] {
        create_upload(&mut client, key).await;
    }

    // No delimiter: two per page, three pages.
    let first = list(
        &mut client,
        ListMultipartUploadsRequest {
            bucket: "b".into(),
            max_uploads: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(listed(&first), ["a", "b"], "first page without a delimiter");
    assert!(
        first.truncated,
        "first page without a delimiter: not truncated"
    );
    let last = first.items.last().unwrap();
    let second = list(
        &mut client,
        ListMultipartUploadsRequest {
            bucket: "b".into(),
            max_uploads: 2,
            key_marker: last.key.clone(),
            upload_id_marker: last.upload.as_ref().unwrap().upload_id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(listed(&second), ["c", "d/1"], "second page");
    assert!(second.truncated, "second page: not truncated");
    let last = second.items.last().unwrap();
    let third = list(
        &mut client,
        ListMultipartUploadsRequest {
            bucket: "b".into(),
            max_uploads: 2,
            key_marker: last.key.clone(),
            upload_id_marker: last.upload.as_ref().unwrap().upload_id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(listed(&third), ["d/2"], "third page");
    assert!(!third.truncated, "the last page is truncated");
    assert!(third.covered_to_end, "one range serves every key");

    // A delimiter rolls d/1 and d/2 up into one item.
    let rolled = list(
        &mut client,
        ListMultipartUploadsRequest {
            bucket: "b".into(),
            delimiter: "/".into(),
            max_uploads: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(listed(&rolled), ["a", "b", "c"]);
    assert!(rolled.truncated, "with a delimiter: not truncated");
    let rest = list(
        &mut client,
        ListMultipartUploadsRequest {
            bucket: "b".into(),
            delimiter: "/".into(),
            max_uploads: 3,
            key_marker: "c".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(listed(&rest), ["P:d/"]);
    assert!(!rest.truncated);
}
