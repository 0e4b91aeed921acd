"""Workloads: threads that drive a stamp through the S3 API and record every operation.

Each operation is one attempt (botocore's own retries are off, so a conditional PUT is never
silently re-sent) with connect and read timeouts, recorded in the shared `History` with its
invoke and complete times and a result:
  ok       the stamp acknowledged it (2xx; for a read: what it returned),
  fail     a definite refusal (4xx: 412 PreconditionFailed, 404 NoSuchKey for a write...), or
           any failed read (a read changes nothing),
  unknown  a write whose outcome we cannot know (timeout, connection reset, 5xx): it may or may
           not have taken effect, and the checker allows both.
Workers move to their next operation after a failure (after a short pause, so a stamp that is
down is not hammered), alternating front-ends, so every retry is bounded by the run itself.

Two stamps (a `Route`): each worker keeps to one bucket, and sends each request to a front-end
of either stamp drawn at random; every operation records its bucket's `home` stamp and the
stamp it went `via` (a request for a bucket homed elsewhere is forwarded by the front-end).
"""

import hashlib
import random
import threading
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

PART_BYTES = 5 * 1024 * 1024
FAILURE_PAUSE_S = 0.1

# Uploads streaming right now, (bucket, key) -> number of them: nemeses that must strike while
# object bytes are in flight (move-under-upload) wait for one and aim at the range holding it.
_streaming = {}
_streaming_lock = threading.Lock()


def streaming_uploads():
    """(bucket, key) of every upload streaming now."""
    with _streaming_lock:
        return sorted(_streaming)


class _Streaming:
    def __init__(self, bucket, key):
        self.entry = (bucket, key)

    def __enter__(self):
        with _streaming_lock:
            _streaming[self.entry] = _streaming.get(self.entry, 0) + 1

    def __exit__(self, *exc):
        with _streaming_lock:
            _streaming[self.entry] -= 1
            if not _streaming[self.entry]:
                del _streaming[self.entry]


class History:
    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.phase = "warm-up"

    def now(self):
        return time.monotonic() - self.t0

    def record(self, op):
        with self.lock:
            op["id"] = len(self.ops)
            self.ops.append(op)
        return op


def client(endpoint, credentials):
    access_key, secret_key = credentials
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(
            connect_timeout=2,
            read_timeout=10,
            retries={"total_max_attempts": 1, "mode": "standard"},  # one attempt: no retry
            s3={"addressing_style": "path"},
        ),
    )


def classify(err, is_write):
    """(result, error text) for an exception raised by one S3 call."""
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = err.response.get("Error", {}).get("Code", "?")
        if status and status < 500:
            return "fail", code
        return ("unknown" if is_write else "fail"), f"{status} {code}"
    # Even "could not connect" stays unknown for a write: a full run (seed 5) read back the
    # value of a PUT that botocore reported as EndpointConnectionError.
    return ("unknown" if is_write else "fail"), type(err).__name__


def etag_of(body):
    return '"' + hashlib.md5(body).hexdigest() + '"'


class Route:
    """Two-stamp mode: the stamp of each endpoint, each workload bucket's home stamp, and the
    draw of a front-end per request (its own seeded rng: the workload's choices do not move)."""

    def __init__(self, endpoint_stamps, homes, rng):
        self.stamps = list(endpoint_stamps)
        # Shared, not copied: a bucket moved to another stamp (move-bucket) gets its new home
        # in the target's `homes`, and every operation begun after that names it.
        self.homes = homes
        self.rng = rng

    def pick(self):
        return self.rng.randrange(len(self.stamps))

    def home(self, bucket):
        """A workload bucket's home (None for a bucket not known here: one being created)."""
        return self.homes.get(bucket)


def http_status(err):
    if isinstance(err, ClientError):
        return err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return 0


class Worker(threading.Thread):
    kind = "?"

    def __init__(self, number, history, endpoints, credentials, bucket, stop, rng, route=None):
        super().__init__(name=f"{self.kind}-{number}", daemon=True)
        self.number = number
        self.history = history
        self.clients = [client(e, credentials) for e in endpoints]
        self.endpoint = number % len(self.clients)
        self.bucket = bucket
        self.stop = stop
        self.rng = rng
        self.route = route
        self.seq = 0

    def s3(self):
        return self.clients[self.endpoint]

    def _route(self, op):
        """The bucket of `op`, and with a Route the front-end drawn for it and both stamps."""
        op.setdefault("bucket", self.bucket)
        if self.route is None:
            return
        self.endpoint = self.route.pick()
        op["via"] = self.route.stamps[self.endpoint]
        op.setdefault("home", self.route.home(op["bucket"]))

    def call(self, op, fn, is_write):
        """Runs one S3 call for `op`, recording times and result; returns the call's answer."""
        self._route(op)
        op.update(worker=self.name, phase=self.history.phase, invoke=self.history.now(), endpoint=self.endpoint)
        answer = None
        try:
            answer = fn(self.s3())
            op["result"] = "ok"
        except Exception as err:  # every failure is recorded, none is fatal
            op["result"], op["error"] = classify(err, is_write)
            op["http_status"] = http_status(err)
            if op.get("error") == "NoSuchKey" and not is_write:
                op["result"], op["value"] = "ok", None  # a read that found nothing
        op["complete"] = self.history.now()
        self.history.record(op)
        if op["result"] != "ok":
            self.endpoint = (self.endpoint + 1) % len(self.clients)
            self.stop.wait(FAILURE_PAUSE_S)
        return answer

    def run(self):
        while not self.stop.is_set():
            self.seq += 1
            self.step()

    def read(self, key):
        op = {"kind": "read", "key": key}
        answer = self.call(op, lambda s3: s3.get_object(Bucket=self.bucket, Key=key), is_write=False)
        if answer is not None:
            try:
                op["value"] = answer["Body"].read().decode()
                op["etag"] = answer["ETag"]
            except Exception as err:  # the body broke off: a failed read
                op["result"], op["error"] = "fail", type(err).__name__
                self.endpoint = (self.endpoint + 1) % len(self.clients)
                self.stop.wait(FAILURE_PAUSE_S)  # as after any failure: no hammering
        return op

    def write(self, key, value, kind="write", **conditions):
        op = {"kind": kind, "key": key, "value": value, "etag": etag_of(value.encode())}
        op.update({k: v for k, v in conditions.items()})
        self.call(
            op,
            lambda s3: s3.put_object(Bucket=self.bucket, Key=key, Body=value.encode(), **conditions),
            is_write=True,
        )
        return op


class RegisterWorker(Worker):
    """Plain PUT / GET on a few shared keys (registers)."""

    kind = "register"
    keys = 8

    def step(self):
        key = f"reg/{self.rng.randrange(self.keys)}"
        if self.rng.random() < 0.5:
            self.write(key, f"{self.name}-{self.seq}")
        else:
            self.read(key)


class CasWorker(Worker):
    """Read-modify-write chains: GET, then PUT If-Match the etag read (If-None-Match: * when the
    key is absent). Every successful conditional write must name the previous one's etag."""

    kind = "cas"
    keys = 4

    def step(self):
        key = f"cas/{self.rng.randrange(self.keys)}"
        read = self.read(key)
        if read["result"] != "ok":
            return
        value = f"{self.name}-{self.seq}"
        if read["value"] is None:
            self.write(key, value, kind="cas", IfNoneMatch="*")
        else:
            self.write(key, value, kind="cas", IfMatch=read["etag"])


class CreateWorker(Worker):
    """Every create worker tries If-None-Match: * on the same sequence of fresh keys: at most
    one of them may succeed per key."""

    kind = "create"

    def step(self):
        key = f"create/{self.seq}"
        self.write(key, f"{self.name}-{self.seq}", kind="create", IfNoneMatch="*")


class SetWorker(Worker):
    """A set per prefix: PUT new keys, DELETE some acknowledged ones, LIST the prefix."""

    kind = "set"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.present = []
        self.prefix = f"set/{self.number}/"

    def step(self):
        roll = self.rng.random()
        if roll < 0.65 or not self.present:
            key = f"{self.prefix}{self.seq:06d}"
            op = {"kind": "set-put", "key": key, "value": "x"}
            self.call(op, lambda s3: s3.put_object(Bucket=self.bucket, Key=key, Body=b"x"), is_write=True)
            if op["result"] == "ok":
                self.present.append(key)
        elif roll < 0.75:
            key = self.present.pop(self.rng.randrange(len(self.present)))
            op = {"kind": "set-delete", "key": key}
            self.call(op, lambda s3: s3.delete_object(Bucket=self.bucket, Key=key), is_write=True)
            if op["result"] == "fail":
                self.present.append(key)
        else:
            self.list()

    def list(self):
        op = {"kind": "list", "key": self.prefix}
        keys = self.call(op, lambda s3: list_keys(s3, self.bucket, self.prefix), is_write=False)
        op["keys"] = keys
        return op


class BucketWorker(Worker):
    """Buckets come and go: CreateBucket through a front-end of either stamp (placement picks its
    home stamp), PUT one object and GET it back through front-ends of either stamp (a GET of a
    bucket created a moment ago on the other stamp must find its home), DELETE the object and
    the bucket. CreateBucket and DeleteBucket ask the location group: this is the workload
    kill-location-leader measures. Operations are bucket-*; the object's key is "k". Their
    home is not looked up (that would stall the workload behind the location group): None."""

    kind = "bucket"

    def step(self):
        name = f"{self.bucket}-{self.number}-{self.seq}"
        create = {"kind": "bucket-create", "key": "", "bucket": name}
        self.call(create, lambda s3: s3.create_bucket(Bucket=name), is_write=True)
        if create["result"] != "ok":
            return  # an unknown outcome may leave the bucket: harmless, names are never reused
        home = {"bucket": name}
        value = f"{self.name}-{self.seq}"
        put = {"kind": "bucket-put", "key": "k", "value": value, **home}
        self.call(put, lambda s3: s3.put_object(Bucket=name, Key="k", Body=value.encode()), is_write=True)
        get = {"kind": "bucket-get", "key": "k", **home}
        get["value"] = self.call(get, lambda s3: s3.get_object(Bucket=name, Key="k")["Body"].read().decode(), False)
        delete = {"kind": "bucket-delete-object", "key": "k", **home}
        self.call(delete, lambda s3: s3.delete_object(Bucket=name, Key="k"), is_write=True)
        drop = {"kind": "bucket-delete", "key": "", **home}
        self.call(drop, lambda s3: s3.delete_bucket(Bucket=name), is_write=True)


def list_keys(s3, bucket, prefix):
    keys, token = [], None
    while True:
        kwargs = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1000}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        token = page["NextContinuationToken"]


def object_bytes(seed, key, size):
    """The deterministic content of a multipart object (regenerated, never kept in memory)."""
    return random.Random(f"{seed}/{key}").randbytes(size)


class MultipartWorker(Worker):
    """Large objects, each verified by the SHA-256 of its content when read: multipart uploads
    of 5 MiB parts, or (`single_put`) one large PUT each. Both are recorded as mp-write."""

    kind = "multipart"
    part_retries = 3

    def __init__(self, *args, seed, size, single_put=False, **kwargs):
        if single_put:
            self.kind = "large-put"
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.size = size
        self.single_put = single_put
        self.acked = []

    def step(self):
        if self.acked and self.rng.random() < 0.3:
            self.read_object(self.rng.choice(self.acked))
        else:
            self.upload(f"big/{self.number}/{self.seq}")

    def upload(self, key):
        body = object_bytes(self.seed, key, self.size)
        op = {"kind": "mp-write", "key": key, "sha256": hashlib.sha256(body).hexdigest(), "size": self.size}
        op["upload"] = "put" if self.single_put else "multipart"
        with _Streaming(self.bucket, key):
            if self.single_put:
                self.call(op, lambda s3: s3.put_object(Bucket=self.bucket, Key=key, Body=body), is_write=True)
            else:
                self.call(op, lambda s3: self._upload(s3, key, body), is_write=True)
        if op["result"] == "ok":
            self.acked.append(key)

    def _upload(self, s3, key, body):
        upload = s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        parts = []
        for number, start in enumerate(range(0, len(body), PART_BYTES), start=1):
            chunk = body[start : start + PART_BYTES]
            for attempt in range(self.part_retries):
                try:
                    etag = s3.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number, Body=chunk
                    )["ETag"]
                    break
                except Exception:
                    if attempt == self.part_retries - 1:
                        raise
                    self.stop.wait(FAILURE_PAUSE_S)
            parts.append({"PartNumber": number, "ETag": etag})
        return s3.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )

    def read_object(self, key):
        op = {"kind": "mp-read", "key": key}
        answer = self.call(op, lambda s3: read_sha256(s3, self.bucket, key), is_write=False)
        op["sha256"] = answer
        return op


def read_sha256(s3, bucket, key):
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()
