"""SigV4: wrong or missing signatures are refused with S3's codes; presigned URLs work."""

import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from stamp import ACCESS_KEY


def http(method, url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_wrong_secret_is_signature_does_not_match(stamp, bucket):
    bad = stamp.client(secret_key="not-the-secret")
    with pytest.raises(ClientError) as err:
        bad.list_objects_v2(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_access_key(stamp, bucket):
    bad = stamp.client(access_key="AKIAUNKNOWNKEY000000")
    with pytest.raises(ClientError) as err:
        bad.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_anonymous_request_is_denied(stamp, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    status, body = http("GET", f"{stamp.endpoint}/{bucket}/private")
    assert status == 403
    assert b"<Code>AccessDenied</Code>" in body
    status, _ = http("PUT", f"{stamp.endpoint}/{bucket}/anon", data=b"x")
    assert status == 403
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="anon")


def test_presigned_urls(stamp, s3, bucket):
    s3.put_object(Bucket=bucket, Key="shared", Body=b"shared bytes")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared"}, ExpiresIn=300)
    assert http("GET", url) == (200, b"shared bytes")
    tampered = url.replace("shared", "shared2", 1)
    status, body = http("GET", tampered)
    assert status == 403 and b"SignatureDoesNotMatch" in body
    # The content type is part of what a presigned PUT signs; send exactly what was signed.
    params = {"Bucket": bucket, "Key": "uploaded", "ContentType": "application/octet-stream"}
    put_url = s3.generate_presigned_url("put_object", Params=params, ExpiresIn=300)
    status, _ = http("PUT", put_url, data=b"via presigned put", headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    assert s3.get_object(Bucket=bucket, Key="uploaded")["Body"].read() == b"via presigned put"


def test_sigv2_presigned_urls_are_refused(stamp, s3, bucket):
    """boto3's SigV2 presigning (its default without signature_version) is refused as S3
    refuses it where SigV2 is off; a presigned PUT stores nothing."""
    v2 = stamp.client(signature_version="s3")
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    assert "Signature=" in url and "X-Amz-Signature" not in url
    status, body = http("GET", url)
    assert status == 400 and b"<Code>InvalidRequest</Code>" in body and b"AWS4-HMAC-SHA256" in body
    put_url = v2.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "v2put"}, ExpiresIn=300)
    status, _ = http("PUT", put_url, data=b"v2 put")
    assert status == 400
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="v2put")


def test_presigned_urls_expire_within_a_week(stamp, s3, bucket):
    s3.put_object(Bucket=bucket, Key="week", Body=b"w")
    week = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "week"}, ExpiresIn=604800)
    assert http("GET", week) == (200, b"w")
    longer = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "week"}, ExpiresIn=604801)
    status, body = http("GET", longer)
    assert status == 400 and b"<Code>AuthorizationQueryParametersError</Code>" in body


def test_boto3_protection_parameters_are_refused(stamp, s3, bucket):
    """boto3's own headers for owner-only ACLs pass; encryption, object lock and public ACLs
    are refused and store nothing."""
    s3.put_object(Bucket=bucket, Key="owned", Body=b"o", ACL="bucket-owner-full-control")
    refused = [
        ({"ServerSideEncryption": "AES256"}, "NotImplemented"),
        ({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}, "NotImplemented"),
        ({"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": "2030-01-01T00:00:00Z"}, "NotImplemented"),
        ({"ACL": "public-read"}, "AccessControlListNotSupported"),
    ]
    for extra, code in refused:
        with pytest.raises(ClientError) as err:
            s3.put_object(Bucket=bucket, Key="protected", Body=b"p", **extra)
        assert err.value.response["Error"]["Code"] == code, extra
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key="protected")


def test_presigned_urls_sigv4(stamp, bucket):
    """Query-string SigV4 (X-Amz-Signature), what current SDKs generate."""
    v4 = stamp.client(signature_version="s3v4")
    v4.put_object(Bucket=bucket, Key="v4", Body=b"v4 bytes")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v4"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url
    assert http("GET", url) == (200, b"v4 bytes")
    status, body = http("GET", url.replace("X-Amz-Expires=300", "X-Amz-Expires=301"))
    assert status == 403 and b"SignatureDoesNotMatch" in body
    put_url = v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "v4put"}, ExpiresIn=300)
    status, _ = http("PUT", put_url, data=b"v4 put")
    assert status == 200
    assert v4.get_object(Bucket=bucket, Key="v4put")["Body"].read() == b"v4 put"


def test_tampered_body_is_rejected(stamp, s3, bucket):
    """A body that does not match the signed x-amz-content-sha256 stores nothing."""
    import datetime
    import hashlib
    import hmac

    from stamp import SECRET_KEY

    host = stamp.endpoint.removeprefix("http://")
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    signed_hash = hashlib.sha256(b"the signed body").hexdigest()
    path = f"/{bucket}/tampered"
    canonical = "\n".join(
        [
            "PUT",
            path,
            "",
            f"host:{host}",
            f"x-amz-content-sha256:{signed_hash}",
            f"x-amz-date:{amz_date}",
            "",
            "host;x-amz-content-sha256;x-amz-date",
            signed_hash,
        ]
    )
    scope = f"{day}/us-east-1/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + SECRET_KEY).encode()
    for part in [day, "us-east-1", "s3", "aws4_request"]:
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers = {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": signed_hash,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, "
        f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}",
    }
    # Correctly signed, matching body: accepted (proves the hand-made signature is right).
    status, _ = http("PUT", f"{stamp.endpoint}{path}", data=b"the signed body", headers=headers)
    assert status == 200
    # Same headers, other body of the same length: refused, and the stored object is unchanged.
    status, body = http("PUT", f"{stamp.endpoint}{path}", data=b"the forged body", headers=headers)
    assert status in (400, 403), body
    assert s3.get_object(Bucket=bucket, Key="tampered")["Body"].read() == b"the signed body"
