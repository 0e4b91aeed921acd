"""Object and bucket tagging, CORS (Put/Get/DeleteBucketCors, preflight OPTIONS answered from
the bucket's rules, Access-Control-* headers on matching requests), `response-*` overrides on
GET, and presigned PUT."""

import http.client
import os
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError


def tags(response):
    return {t["Key"]: t["Value"] for t in response["TagSet"]}


def test_object_tagging(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", Tagging="project=blue%20sky&team=storage")
    assert tags(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"project": "blue sky", "team": "storage"}
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 2
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "only", "Value": "one"}]})
    assert tags(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"only": "one"}
    # Tagging leaves the bytes and the ETag alone.
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"data" and got["TagCount"] == 1
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")

    too_many = [{"Key": f"k{i}", "Value": "v"} for i in range(11)]
    with pytest.raises(ClientError) as err:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": too_many})
    assert err.value.response["Error"]["Code"] == "InvalidTag"
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="k2", Body=b"x", Tagging="a=1&a=2")
    assert err.value.response["Error"]["Code"] == "InvalidTag"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k2")
    with pytest.raises(ClientError) as err:
        s3.get_object_tagging(Bucket=bucket, Key="missing")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"


def test_tags_follow_copies_and_multipart(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"data", Tagging="a=1")
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "src"})
    assert tags(s3.get_object_tagging(Bucket=bucket, Key="copy")) == {"a": "1"}
    s3.copy_object(
        Bucket=bucket, Key="retagged", CopySource={"Bucket": bucket, "Key": "src"}, TaggingDirective="REPLACE", Tagging="b=2"
    )
    assert tags(s3.get_object_tagging(Bucket=bucket, Key="retagged")) == {"b": "2"}
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="kind=multipart")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"p")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )
    assert tags(s3.get_object_tagging(Bucket=bucket, Key="mp")) == {"kind": "multipart"}


def test_bucket_tagging(s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.get_bucket_tagging(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "cost-center", "Value": "42"}]})
    assert tags(s3.get_bucket_tagging(Bucket=bucket)) == {"cost-center": "42"}
    # Another configuration of the same bucket does not undo the tags.
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]})
    assert tags(s3.get_bucket_tagging(Bucket=bucket)) == {"cost-center": "42"}
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_tagging(Bucket=bucket)


def raw(stamp, method, path, headers=None, body=None):
    url = urllib.parse.urlparse(stamp.endpoint)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_cors(stamp, s3, bucket):
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"}
    status, _, body = raw(stamp, "OPTIONS", f"/{bucket}/k", preflight)
    assert status == 403 and b"CORS is not enabled" in body
    with pytest.raises(ClientError) as err:
        s3.get_bucket_cors(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    rules = [
        {
            "AllowedOrigins": ["https://*.example.com"],
            "AllowedMethods": ["GET", "PUT"],
            "AllowedHeaders": ["content-type", "x-amz-*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 600,
        },
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
    ]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    stored = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert stored[0]["AllowedOrigins"] == ["https://*.example.com"] and stored[0]["MaxAgeSeconds"] == 600
    assert stored[1]["AllowedMethods"] == ["GET"]

    status, headers, _ = raw(stamp, "OPTIONS", f"/{bucket}/k", {**preflight, "Access-Control-Request-Headers": "Content-Type, X-Amz-Date"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert headers["access-control-allow-methods"] == "GET, PUT"
    assert headers["access-control-allow-headers"] == "Content-Type, X-Amz-Date"
    assert headers["access-control-max-age"] == "600"
    assert headers["access-control-expose-headers"] == "ETag"
    # A header no rule allows, a method no rule allows, an origin no rule allows.
    for refused in (
        {**preflight, "Access-Control-Request-Headers": "Authorization"},
        {**preflight, "Access-Control-Request-Method": "DELETE"},
        {"Origin": "https://evil.test", "Access-Control-Request-Method": "PUT"},
    ):
        status, headers, body = raw(stamp, "OPTIONS", f"/{bucket}/k", refused)
        assert status == 403 and b"AccessForbidden" in body, refused
        assert "access-control-allow-origin" not in headers
    # Any origin may GET (the second rule), answered with "*".
    status, headers, _ = raw(stamp, "OPTIONS", f"/{bucket}/k", {"Origin": "https://other.test", "Access-Control-Request-Method": "GET"})
    assert status == 200 and headers["access-control-allow-origin"] == "*"
    status, _, _ = raw(stamp, "OPTIONS", f"/{bucket}/k", {"Origin": "https://x.test"})
    assert status == 400

    # A signed request with an Origin gets the matching rule's headers.
    s3.put_object(Bucket=bucket, Key="k", Body=b"cors")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    parsed = urllib.parse.urlparse(url)
    status, headers, body = raw(stamp, "GET", f"{parsed.path}?{parsed.query}", {"Origin": "https://app.example.com"})
    assert status == 200 and body == b"cors"
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert headers["access-control-expose-headers"] == "ETag"
    status, headers, _ = raw(stamp, "GET", f"{parsed.path}?{parsed.query}")
    assert status == 200 and "access-control-allow-origin" not in headers

    with pytest.raises(ClientError) as err:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]})
    assert err.value.response["Error"]["Code"] == "InvalidRequest"
    s3.delete_bucket_cors(Bucket=bucket)
    status, _, body = raw(stamp, "OPTIONS", f"/{bucket}/k", preflight)
    assert status == 403 and b"CORS is not enabled" in body
    status, _, body = raw(stamp, "OPTIONS", "/t-no-such-bucket/k", preflight)
    assert status == 403


def test_response_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello", ContentType="text/plain", CacheControl="no-cache")
    got = s3.get_object(
        Bucket=bucket,
        Key="k",
        ResponseContentType="application/x-override",
        ResponseContentDisposition='attachment; filename="hello.txt"',
        ResponseCacheControl="max-age=60",
        ResponseContentEncoding="identity",
        ResponseContentLanguage="fr",
        ResponseExpires="Thu, 01 Dec 2033 16:00:00 GMT",
    )
    assert got["Body"].read() == b"hello"
    assert got["ContentType"] == "application/x-override"
    assert got["ContentDisposition"] == 'attachment; filename="hello.txt"'
    assert got["CacheControl"] == "max-age=60"
    assert got["ContentEncoding"] == "identity"
    assert got["ContentLanguage"] == "fr"
    assert got["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Thu, 01 Dec 2033 16:00:00 GMT"
    # Only that answer: the stored headers are unchanged.
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["ContentType"] == "text/plain" and head["CacheControl"] == "no-cache"


def test_presigned_put(stamp, s3, bucket):
    data = os.urandom(300_000)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up", "ContentType": "image/png"}, ExpiresIn=300)
    request = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    got = s3.get_object(Bucket=bucket, Key="up")
    assert got["Body"].read() == data and got["ContentType"] == "image/png"
    # The same with a SigV4 presigned URL (X-Amz-Signature in the query).
    v4 = stamp.client(signature_version="s3v4")
    url_v4 = v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up-v4"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url_v4
    request = urllib.request.Request(url_v4, data=data[::-1], method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    assert s3.get_object(Bucket=bucket, Key="up-v4")["Body"].read() == data[::-1]
    # A tampered presigned URL stores nothing.
    bad = url.replace("up?", "other?")
    request = urllib.request.Request(bad, data=data, method="PUT", headers={"Content-Type": "image/png"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 403
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="other")
