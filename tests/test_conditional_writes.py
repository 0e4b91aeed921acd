"""Conditional writes (If-None-Match: * and If-Match on PutObject and CompleteMultipartUpload),
decided by the range's owner atomically with the write: a failed condition stores nothing, and
of many concurrent writers to one key exactly one wins, every time."""

import os
import threading

import pytest
from botocore.exceptions import ClientError

MIB = 1024 * 1024


def error_of(excinfo):
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def body_of(s3, bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_if_none_match_creates_only_once(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert error_of(excinfo) == (412, "PreconditionFailed")
    assert body_of(s3, bucket, "k") == b"first"
    # After a delete the key can be created again.
    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"third", IfNoneMatch="*")
    assert body_of(s3, bucket, "k") == b"third"


def test_if_match_replaces_only_the_expected_version(s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=first)["ETag"]
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"stale", IfMatch=first)
    assert error_of(excinfo) == (412, "PreconditionFailed")
    assert body_of(s3, bucket, "k") == b"v2"
    assert s3.head_object(Bucket=bucket, Key="k")["ETag"] == second

    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="missing", Body=b"x", IfMatch=first)
    assert error_of(excinfo) == (404, "NoSuchKey")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="missing")


def test_a_refused_large_body_stores_nothing(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"small")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(8 * MIB), IfNoneMatch="*")
    assert error_of(excinfo) == (412, "PreconditionFailed")
    assert body_of(s3, bucket, "k") == b"small"


def race(writers, write):
    """Runs `write(i)` in `writers` threads released at once; returns each one's outcome."""
    barrier = threading.Barrier(writers)
    outcomes = [None] * writers

    def run(i):
        barrier.wait()
        try:
            write(i)
            outcomes[i] = "won"
        except ClientError as err:
            outcomes[i] = err.response["Error"]["Code"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a writer hung"
    return outcomes


def test_concurrent_creates_exactly_one_wins(stamp, bucket):
    writers = 12
    clients = [stamp.client() for _ in range(writers)]
    for round_ in range(5):
        key = f"lock-{round_}"
        outcomes = race(
            writers,
            lambda i: clients[i].put_object(
                Bucket=bucket, Key=key, Body=f"owner-{i}".encode(), IfNoneMatch="*"
            ),
        )
        winners = [i for i, o in enumerate(outcomes) if o == "won"]
        assert len(winners) == 1, outcomes
        assert all(o in ("won", "PreconditionFailed") for o in outcomes), outcomes
        assert body_of(clients[0], bucket, key) == f"owner-{winners[0]}".encode()


def test_compare_and_swap_counter_loses_no_increment(stamp, bucket):
    """Optimistic concurrency: read the counter and its ETag, write +1 with If-Match. Every
    write that succeeded is one increment; none is lost or applied twice."""
    writers, attempts = 6, 15
    setup = stamp.client()
    setup.put_object(Bucket=bucket, Key="counter", Body=b"0")
    clients = [stamp.client() for _ in range(writers)]
    won = [0] * writers

    def worker(i):
        s3 = clients[i]
        for _ in range(attempts):
            got = s3.get_object(Bucket=bucket, Key="counter")
            value = int(got["Body"].read())
            try:
                s3.put_object(
                    Bucket=bucket, Key="counter", Body=str(value + 1).encode(), IfMatch=got["ETag"]
                )
                won[i] += 1
            except ClientError as err:
                assert err.response["Error"]["Code"] == "PreconditionFailed", err.response

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive()
    assert sum(won) >= 1
    assert int(body_of(setup, bucket, "counter")) == sum(won)


def test_complete_multipart_upload_with_conditions(s3, bucket):
    s3.put_object(Bucket=bucket, Key="mp", Body=b"existing")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"new")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}

    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts, IfNoneMatch="*"
        )
    assert error_of(excinfo) == (412, "PreconditionFailed")
    assert body_of(s3, bucket, "mp") == b"existing"
    # The upload is still there and completes with a condition that holds.
    assert len(s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]) == 1
    current = s3.head_object(Bucket=bucket, Key="mp")["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload=parts, IfMatch=current
    )
    assert body_of(s3, bucket, "mp") == b"new"


def test_if_none_match_with_an_etag_is_not_implemented(s3, bucket):
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfNoneMatch='"abc"')
    assert error_of(excinfo) == (501, "NotImplemented")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k")


def test_if_match_target_deleted_mid_body_is_a_conflict(stamp, s3, bucket):
    """S3 answers 409 ConditionalRequestConflict when the object an If-Match PUT names is
    deleted while the body streams: the owner checked it before the first byte, and finds it
    gone at the commit. Nothing is stored."""
    import http.client
    import urllib.parse

    from sigv4_chunked import Signer
    from stamp import ACCESS_KEY, SECRET_KEY

    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"original")["ETag"]
    mib = 1024 * 1024
    # Far more than every buffer between here and the owner (socket buffers, two queued
    # chunks): once it is sent, the owner has read the header and checked If-Match.
    first, rest = os.urandom(24 * mib), os.urandom(6 * mib)
    url = urllib.parse.urlparse(stamp.endpoint)
    headers = {"host": url.netloc, "if-match": etag, "content-length": str(len(first) + len(rest))}
    Signer(ACCESS_KEY, SECRET_KEY).seed("PUT", f"/{bucket}/k", headers, "UNSIGNED-PAYLOAD")
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    try:
        connection.putrequest("PUT", f"/{bucket}/k", skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(first)
        s3.delete_object(Bucket=bucket, Key="k")
        connection.send(rest)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 409 and b"ConditionalRequestConflict" in body, body
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="k")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
