"""Bucket versioning as AWS documents it: Put/GetBucketVersioning (Enabled, Suspended), version
ids on PUT, delete markers, GetObject / HeadObject / DeleteObject / CopyObject with versionId,
ListObjectVersions with key-marker / version-id-marker paging, and the null version of
unversioned and suspended buckets. Versions survive a restart of the stamp (they are index
entries in the commit log and checkpoints like any other)."""

import pytest
from botocore.exceptions import ClientError


def error_of(call):
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response


def all_versions(s3, bucket, **kwargs):
    listed = s3.list_object_versions(Bucket=bucket, **kwargs)
    versions = [(v["Key"], v["VersionId"], v["IsLatest"], "v") for v in listed.get("Versions", [])]
    markers = [(m["Key"], m["VersionId"], m["IsLatest"], "m") for m in listed.get("DeleteMarkers", [])]
    return listed, versions, markers


def test_versioning_lifecycle_of_a_key(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    # Written before versioning: the null version.
    s3.put_object(Bucket=bucket, Key="k", Body=b"v0")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"v2")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"v2" and got["VersionId"] == v2
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"v1"
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"v0"
    assert s3.head_object(Bucket=bucket, Key="k", VersionId=v1)["ContentLength"] == 2

    # A plain DELETE adds a delete marker; the data stays.
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    response = error_of(lambda: s3.get_object(Bucket=bucket, Key="k"))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    response = error_of(lambda: s3.head_object(Bucket=bucket, Key="k", VersionId=marker))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 405
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v2)["Body"].read() == b"v2"

    _, versions, markers = all_versions(s3, bucket)
    assert markers == [("k", marker, True, "m")]
    assert versions == [("k", v2, False, "v"), ("k", v1, False, "v"), ("k", "null", False, "v")]

    # Deleting the marker by version id brings the newest version back.
    removed = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert removed["DeleteMarker"] is True and removed["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    # Deleting a noncurrent version removes it for good.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v1)
    response = error_of(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId=v1))
    assert response["Error"]["Code"] == "NoSuchVersion"
    # Deleting the current version by id promotes the next one.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v0"
    _, versions, _ = all_versions(s3, bucket)
    assert versions == [("k", "null", True, "v")]
    # A bucket with versions is not empty.
    response = error_of(lambda: s3.delete_bucket(Bucket=bucket))
    assert response["Error"]["Code"] == "BucketNotEmpty"


def test_suspended_bucket_writes_the_null_version(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"null-1")
    assert first.get("VersionId") == "null"
    s3.put_object(Bucket=bucket, Key="k", Body=b"null-2")
    _, versions, _ = all_versions(s3, bucket)
    # The second null write replaced the first; the enabled-era version is kept.
    assert versions == [("k", "null", True, "v"), ("k", kept, False, "v")]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"null-2"
    # A DELETE in a suspended bucket makes the null version a delete marker.
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True and deleted["VersionId"] == "null"
    _, versions, markers = all_versions(s3, bucket)
    assert markers == [("k", "null", True, "m")]
    assert versions == [("k", kept, False, "v")]
    # Back to Enabled: new versions get ids again; never back to unversioned.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    again = s3.put_object(Bucket=bucket, Key="k", Body=b"again")["VersionId"]
    assert again not in ("null", kept)
    _, versions, markers = all_versions(s3, bucket)
    assert versions == [("k", again, True, "v"), ("k", kept, False, "v")]
    assert markers == [("k", "null", False, "m")]


def test_list_object_versions_paging(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    expected = []
    for key in ("a", "b/x", "b/y", "c"):
        ids = [s3.put_object(Bucket=bucket, Key=key, Body=f"{key}{i}".encode())["VersionId"] for i in range(3)]
        expected += [(key, vid) for vid in reversed(ids)]
    marker = s3.delete_object(Bucket=bucket, Key="c")["VersionId"]
    expected.insert(expected.index(("c", expected[-3][1])), ("c", marker))

    _, versions, markers = all_versions(s3, bucket)
    assert len(versions) == 12 and len(markers) == 1
    seen = []
    params = {}
    while True:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=5, **params)
        entries = [(v["Key"], v["VersionId"], v["LastModified"]) for v in page.get("Versions", [])]
        entries += [(m["Key"], m["VersionId"], m["LastModified"]) for m in page.get("DeleteMarkers", [])]
        assert len(entries) <= 5
        # Within a page: key order, each key's versions newest first (markers are versions).
        seen += [(k, v) for k, v, _ in sorted(entries, key=lambda e: (e[0], -e[2].timestamp()))]
        if not page["IsTruncated"]:
            break
        params = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen)) == 13

    rolled = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["b/"]
    assert {v["Key"] for v in rolled["Versions"]} == {"a", "c"}
    under = s3.list_object_versions(Bucket=bucket, Prefix="b/", KeyMarker="b/x")
    assert {v["Key"] for v in under["Versions"]} == {"b/y"}
    response = error_of(lambda: s3.list_object_versions(Bucket=bucket, KeyMarker="a", VersionIdMarker="bogus"))
    assert response["Error"]["Code"] == "InvalidArgument"


def test_copy_and_delete_objects_with_versions(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=bucket, Key="src", Body=b"old")["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"new")
    copied = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": old})
    assert copied["CopySourceVersionId"] == old and copied["VersionId"] not in (None, "null")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"old"
    # Tags of one version.
    s3.put_object_tagging(Bucket=bucket, Key="src", VersionId=old, Tagging={"TagSet": [{"Key": "era", "Value": "old"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="src", VersionId=old)["TagSet"] == [{"Key": "era", "Value": "old"}]
    assert s3.get_object_tagging(Bucket=bucket, Key="src")["TagSet"] == []

    answer = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "src", "VersionId": old}, {"Key": "dst"}]}
    )
    by_key = {d["Key"]: d for d in answer["Deleted"]}
    assert by_key["src"]["VersionId"] == old
    assert by_key["dst"]["DeleteMarker"] is True and by_key["dst"]["DeleteMarkerVersionId"]
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="src", VersionId=old))["Error"]["Code"] == "NoSuchVersion"
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="dst"))["ResponseMetadata"]["HTTPStatusCode"] == 404
    response = error_of(
        lambda: s3.copy_object(
            Bucket=bucket,
            Key="x",
            CopySource={"Bucket": bucket, "Key": "dst", "VersionId": by_key["dst"]["DeleteMarkerVersionId"]},
        )
    )
    assert response["Error"]["Code"] == "InvalidRequest"


def test_unversioned_buckets_are_unchanged(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"1")
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"2")
    assert "VersionId" not in put
    _, versions, _ = all_versions(s3, bucket)
    assert versions == [("k", "null", True, "v")]
    assert "DeleteMarker" not in s3.delete_object(Bucket=bucket, Key="k")
    assert all_versions(s3, bucket)[1] == []
    response = error_of(
        lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Bogus"})
    )
    assert response["Error"]["Code"] == "MalformedXML"


def test_conditional_writes_see_delete_markers_as_absent(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="lock", Body=b"1", IfNoneMatch="*")
    assert error_of(lambda: s3.put_object(Bucket=bucket, Key="lock", Body=b"2", IfNoneMatch="*"))["Error"]["Code"] == "PreconditionFailed"
    s3.delete_object(Bucket=bucket, Key="lock")
    s3.put_object(Bucket=bucket, Key="lock", Body=b"3", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="lock")["Body"].read() == b"3"
