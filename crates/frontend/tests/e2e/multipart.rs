//! Multipart uploads through the front-end to a real stamp (`split_stamp`: two partition
//! servers split at photos/"m", so keys on both sides).

use crate::common::client::{assert_error, field, fields, pattern, Client, Reply};
use crate::common::sign::{sha256_hex, ACCESS_KEY};
use crate::common::split_stamp;
use base64::Engine;
use md5::{Digest, Md5};

const MIB: usize = 1024 * 1024;

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

async fn create_upload(c: &Client, path: &str, headers: &[(&str, &str)]) -> String {
    let reply = c
        .send("POST", path, &[("uploads", "")], headers, vec![])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    field(&reply.text(), "UploadId").expect("an UploadId")
}

async fn upload_part(c: &Client, path: &str, upload_id: &str, number: u32, body: &[u8]) -> Reply {
    upload_part_with(c, path, (upload_id, number), &[], body).await
}

/// UploadPart with request `headers`.
async fn upload_part_with(
    c: &Client,
    path: &str,
    (upload_id, number): (&str, u32),
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let number = number.to_string();
    let query = [("partNumber", number.as_str()), ("uploadId", upload_id)];
    c.send("PUT", path, &query, headers, body.to_vec()).await
}

/// UploadPartCopy: part `number` of `upload_id` at `path` is `range` of `source`.
async fn upload_part_copy(
    c: &Client,
    path: &str,
    (upload_id, number): (&str, &str),
    source: &str,
    range: &str,
) -> Reply {
    let query = [("partNumber", number), ("uploadId", upload_id)];
    let headers = [
        ("x-amz-copy-source", source),
        ("x-amz-copy-source-range", range),
    ];
    c.send("PUT", path, &query, &headers, Vec::new()).await
}

fn complete_xml(parts: &[(u32, &str)]) -> Vec<u8> {
    let parts: String = parts
        .iter()
        .map(|(n, etag)| format!("<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"))
        .collect();
    format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>").into_bytes()
}

/// CompleteMultipartUpload with the request body `xml`.
async fn complete_with(c: &Client, path: &str, upload_id: &str, xml: Vec<u8>) -> Reply {
    c.send("POST", path, &[("uploadId", upload_id)], &[], xml)
        .await
}

/// CompleteMultipartUpload listing `parts` (number, ETag).
async fn complete(c: &Client, path: &str, upload_id: &str, parts: &[(u32, &str)]) -> Reply {
    complete_with(c, path, upload_id, complete_xml(parts)).await
}

#[tokio::test]
async fn e2e_multipart_three_parts_complete_and_read_back() {
    // Parts of 5 MiB, 5 MiB and 1 byte on both partition servers: the object's ETag is the
    // MD5 of the binary part MD5s plus "-3", and it reads back byte-exact with its metadata.
    let stamp = split_stamp().await;
    let c = &stamp.client;
    c.create_bucket("photos").await;

    for path in ["/photos/big/mp", "/photos/zz/mp"] {
        let upload_id = create_upload(
            c,
            path,
            &[("content-type", "video/mp4"), ("x-amz-meta-color", "red")],
        )
        .await;
        let data = pattern(10 * MIB + 1);
        let parts = [
            &data[..5 * MIB],
            &data[5 * MIB..10 * MIB],
            &data[10 * MIB..],
        ];
        let mut etags = Vec::new();
        for (index, part) in parts.iter().enumerate() {
            let reply = upload_part(c, path, &upload_id, index as u32 + 1, part).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_eq!(reply.header("etag"), format!("\"{}\"", md5_hex(part)));
            etags.push(reply.header("etag").to_string());
        }

        let listed: Vec<(u32, &str)> = etags
            .iter()
            .enumerate()
            .map(|(i, e)| (i as u32 + 1, e.as_str()))
            .collect();
        let reply = complete(c, path, &upload_id, &listed).await;
        let text = reply.text();
        assert_eq!(reply.status, 200, "{text}");
        let mut binary = Vec::new();
        for part in parts {
            binary.extend_from_slice(&Md5::digest(part));
        }
        let expected_etag = format!("\"{}-3\"", md5_hex(&binary));
        assert_eq!(
            field(&text, "ETag").as_deref(),
            Some(expected_etag.as_str()),
            "{text}"
        );
        assert_eq!(field(&text, "Bucket").as_deref(), Some("photos"), "{text}");
        assert_eq!(
            field(&text, "Key").as_deref(),
            Some(&path["/photos/".len()..]),
            "{text}"
        );
        assert_eq!(
            field(&text, "Location"),
            Some(format!("http://{}{path}", c.host())),
            "{text}"
        );

        let get = c.call("GET", path).await;
        assert_eq!(get.status, 200);
        assert!(get.body == data, "{path} reads back byte-exact");
        assert_eq!(get.header("etag"), expected_etag);
        assert_eq!(get.header("content-type"), "video/mp4");
        assert_eq!(get.header("x-amz-meta-color"), "red");
        // A retried completion answers the commit it made (the partition server keeps the
        // completion's write id), while the upload itself is gone.
        let again = complete(c, path, &upload_id, &listed).await;
        assert_eq!(again.status, 200, "{}", again.text());
        assert_eq!(
            field(&again.text(), "ETag").as_deref(),
            Some(expected_etag.as_str())
        );
        let parts = c.query("GET", path, &[("uploadId", &upload_id)]).await;
        assert_error(&parts, 404, "NoSuchUpload");
    }
    let uploads = c.query("GET", "/photos", &[("uploads", "")]).await;
    assert_eq!(uploads.status, 200, "{}", uploads.text());
    assert!(
        fields(&uploads.text(), "Upload").is_empty(),
        "{}",
        uploads.text()
    );
}

#[tokio::test]
async fn e2e_multipart_requests_refused_before_any_byte_moves() {
    let stamp = split_stamp().await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    let path = "/photos/a/mp";
    let upload_id = create_upload(c, path, &[]).await;

    for number in [0, 10_001] {
        let reply = upload_part(c, path, &upload_id, number, b"x").await;
        assert_error(&reply, 400, "InvalidArgument");
    }
    let no_bucket = create_upload_reply(c, "/nobucket/k").await;
    assert_error(&no_bucket, 404, "NoSuchBucket");
    let no_bucket = upload_part(c, "/nobucket/k", &upload_id, 1, b"x").await;
    assert_error(&no_bucket, 404, "NoSuchBucket");
    let no_bucket = c
        .query("GET", "/nobucket/k", &[("uploadId", &upload_id)])
        .await;
    assert_error(&no_bucket, 404, "NoSuchBucket");

    // Content-MD5 goes through to the owner; a wrong one stores no part.
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(b"hello"));
    let reply =
        upload_part_with(c, path, (&upload_id, 1), &[("content-md5", &md5)], b"hello").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply =
        upload_part_with(c, path, (&upload_id, 2), &[("content-md5", &md5)], b"other").await;
    assert_error(&reply, 400, "BadDigest");
    // A body failing its signed checksum aborts the part's stream.
    let body = pattern(3 * MIB);
    let reply = c
        .send(
            "PUT",
            path,
            &[("partNumber", "3"), ("uploadId", &upload_id)],
            &[("x-amz-content-sha256", &sha256_hex(b"something else"))],
            body,
        )
        .await;
    assert_error(&reply, 400, "XAmzContentSHA256Mismatch");
    let listed = c.query("GET", path, &[("uploadId", &upload_id)]).await;
    assert_eq!(
        fields(&listed.text(), "PartNumber"),
        vec!["1"],
        "{}",
        listed.text()
    );

    let empty = complete_with(
        c,
        path,
        &upload_id,
        b"<CompleteMultipartUpload></CompleteMultipartUpload>".to_vec(),
    )
    .await;
    assert_error(&empty, 400, "MalformedXML");
    let missing = complete_with(c, path, &upload_id, Vec::new()).await;
    assert_error(&missing, 400, "MalformedXML");

    // A small part that is not the last one.
    let etag1 = format!("\"{}\"", md5_hex(b"hello"));
    let reply = upload_part(c, path, &upload_id, 2, b"world").await;
    assert_eq!(reply.status, 200);
    let etag2 = reply.header("etag").to_string();
    let small = complete(c, path, &upload_id, &[(1, &etag1), (2, &etag2)]).await;
    assert_error(&small, 400, "EntityTooSmall");
    // One small part alone is fine; unquoted ETags are accepted.
    let single = complete(c, path, &upload_id, &[(1, &md5_hex(b"hello"))]).await;
    assert_eq!(single.status, 200, "{}", single.text());
    assert_eq!(c.call("GET", path).await.body, b"hello");
}

async fn create_upload_reply(c: &Client, path: &str) -> Reply {
    c.query("POST", path, &[("uploads", "")]).await
}

#[tokio::test]
async fn e2e_multipart_list_parts_pages() {
    let stamp = split_stamp().await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    let path = "/photos/zz/list";
    let upload_id = create_upload(c, path, &[]).await;
    for number in 1..=5u32 {
        let body = vec![number as u8; number as usize * 10];
        assert_eq!(
            upload_part(c, path, &upload_id, number, &body).await.status,
            200
        );
    }

    let mut seen = Vec::new();
    let mut marker = "0".to_string();
    for page in 0.. {
        assert!(page < 5, "paging must end");
        let reply = c
            .query(
                "GET",
                path,
                &[
                    ("uploadId", &upload_id),
                    ("max-parts", "2"),
                    ("part-number-marker", &marker),
                ],
            )
            .await;
        let text = reply.text();
        assert_eq!(reply.status, 200, "{text}");
        assert_eq!(
            field(&text, "UploadId").as_deref(),
            Some(upload_id.as_str())
        );
        assert_eq!(field(&text, "MaxParts").as_deref(), Some("2"), "{text}");
        assert_eq!(
            field(&text, "PartNumberMarker").as_deref(),
            Some(marker.as_str()),
            "{text}"
        );
        let initiator = field(&text, "Initiator").unwrap_or_default();
        assert!(
            initiator.contains(&format!("<ID>{ACCESS_KEY}</ID>")),
            "{text}"
        );
        let owner = field(&text, "Owner").unwrap_or_default();
        assert!(owner.contains(&format!("<ID>{ACCESS_KEY}</ID>")), "{text}");
        for part in fields(&text, "Part") {
            let number: u32 = field(&part, "PartNumber").unwrap().parse().unwrap();
            let size: usize = field(&part, "Size").unwrap().parse().unwrap();
            assert_eq!(size, number as usize * 10);
            let body = vec![number as u8; size];
            assert_eq!(
                field(&part, "ETag"),
                Some(format!("\"{}\"", md5_hex(&body)))
            );
            assert!(field(&part, "LastModified").is_some(), "{part}");
            seen.push(number);
        }
        let truncated = field(&text, "IsTruncated").unwrap();
        if truncated == "false" {
            break;
        }
        assert_eq!(truncated, "true");
        marker = field(&text, "NextPartNumberMarker").expect("a next marker when truncated");
        assert_eq!(marker, seen.last().unwrap().to_string());
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);

    let zero = c
        .query("GET", path, &[("uploadId", &upload_id), ("max-parts", "0")])
        .await;
    assert_eq!(zero.status, 200, "{}", zero.text());
    assert!(fields(&zero.text(), "Part").is_empty(), "{}", zero.text());
    assert_eq!(field(&zero.text(), "IsTruncated").as_deref(), Some("true"));
    let negative = c
        .query(
            "GET",
            path,
            &[("uploadId", &upload_id), ("max-parts", "-1")],
        )
        .await;
    assert_eq!(negative.status, 400, "{}", negative.text());
}

#[tokio::test]
async fn e2e_multipart_abort_then_no_such_upload() {
    let stamp = split_stamp().await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    let path = "/photos/a/aborted";
    let upload_id = create_upload(c, path, &[]).await;
    let reply = upload_part(c, path, &upload_id, 1, b"part").await;
    assert_eq!(reply.status, 200);
    let etag = reply.header("etag").to_string();

    let abort = c.query("DELETE", path, &[("uploadId", &upload_id)]).await;
    assert_eq!(abort.status, 204, "{}", abort.text());

    let part = upload_part(c, path, &upload_id, 2, b"late").await;
    assert_error(&part, 404, "NoSuchUpload");
    let list = c.query("GET", path, &[("uploadId", &upload_id)]).await;
    assert_error(&list, 404, "NoSuchUpload");
    let done = complete(c, path, &upload_id, &[(1, &etag)]).await;
    assert_error(&done, 404, "NoSuchUpload");
    let again = c.query("DELETE", path, &[("uploadId", &upload_id)]).await;
    assert_error(&again, 404, "NoSuchUpload");
    // An upload id of another key is not this key's upload.
    let other = create_upload(c, "/photos/a/other", &[]).await;
    let wrong_key = upload_part(c, path, &other, 1, b"x").await;
    assert_error(&wrong_key, 404, "NoSuchUpload");
    assert_eq!(c.call("HEAD", path).await.status, 404);
}

#[tokio::test]
async fn e2e_multipart_wrong_part_order_and_wrong_etag() {
    let stamp = split_stamp().await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    let path = "/photos/zz/order";
    let upload_id = create_upload(c, path, &[]).await;
    let first = pattern(5 * MIB);
    let etag1 = upload_part(c, path, &upload_id, 1, &first)
        .await
        .header("etag")
        .to_string();
    let etag2 = upload_part(c, path, &upload_id, 2, b"tail")
        .await
        .header("etag")
        .to_string();

    let reversed = complete(c, path, &upload_id, &[(2, &etag2), (1, &etag1)]).await;
    assert_error(&reversed, 400, "InvalidPartOrder");
    let repeated = complete(c, path, &upload_id, &[(1, &etag1), (1, &etag1)]).await;
    assert_error(&repeated, 400, "InvalidPartOrder");
    let wrong_etag = complete(c, path, &upload_id, &[(1, &etag2), (2, &etag2)]).await;
    assert_error(&wrong_etag, 400, "InvalidPart");
    let unknown = complete(c, path, &upload_id, &[(1, &etag1), (3, &etag2)]).await;
    assert_error(&unknown, 400, "InvalidPart");

    // The failures changed nothing: the right list still completes.
    let done = complete(c, path, &upload_id, &[(1, &etag1), (2, &etag2)]).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let mut expected = first;
    expected.extend_from_slice(b"tail");
    assert!(c.call("GET", path).await.body == expected);
}

#[tokio::test]
async fn e2e_upload_part_copy_streams_between_servers() {
    // "a" and "b" live on different partition servers: the part is streamed from one to the
    // other through the front-end.
    let stamp = split_stamp().await;
    let c = &stamp.client;
    c.create_bucket("photos").await;
    assert_eq!(c.put("/photos/a", b"0123456789".to_vec()).await.status, 200);
    let upload_id = create_upload(c, "/photos/z", &[]).await;
    let copy = upload_part_copy(c, "/photos/z", (&upload_id, "1"), "photos/a", "bytes=2-5").await;
    assert_eq!(copy.status, 200, "{}", copy.text());
    assert!(copy.text().contains("<CopyPartResult"), "{}", copy.text());
    let etag = hex::encode(Md5::digest(b"2345"));
    assert!(copy.text().contains(&etag), "{}", copy.text());
    let bad = upload_part_copy(c, "/photos/z", (&upload_id, "2"), "photos/a", "bytes=2-10").await;
    assert_error(&bad, 400, "InvalidArgument");
}
