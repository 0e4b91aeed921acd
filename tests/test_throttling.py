"""Request-rate limits, as S3's "503 SlowDown": above a range's (or a bucket's) budget the owner
refuses at once with 503 SlowDown and Retry-After instead of queueing; nothing refused changes
stored data; a hot bucket does not use up the budget of another bucket in the same range; and
once the client backs off, requests are served again."""

import time

import pytest
from botocore.exceptions import ClientError

from stamp import NO_RETRIES, Stamp, wait_for

# Low enough that a client on a busy 2-core machine still outruns them (a GET is one request:
# the front-end caches bucket records, so only the read counts).
RANGE_LIMIT = 10
BUCKET_LIMIT = 10


def throttled(tmp_path_factory, range_limit, bucket_limit):
    return Stamp(
        tmp_path_factory.mktemp("throttle") / "data",
        extra_args=[
            "--range-requests-per-sec-max", str(range_limit),
            "--bucket-requests-per-sec-max", str(bucket_limit),
        ],
    ).start()


@pytest.fixture(scope="module")
def bucket_limited(tmp_path_factory):
    s = throttled(tmp_path_factory, 0, BUCKET_LIMIT)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def range_limited(tmp_path_factory):
    s = throttled(tmp_path_factory, RANGE_LIMIT, 0)
    yield s
    s.stop()


def no_retry_client(stamp):
    return stamp.client(retries=NO_RETRIES)


def first_slow_down(s3, call, attempts=2_000):
    """Calls `call` until it is refused; returns (refused error, calls that succeeded, the most
    a budget of `limit` requests/s could have let through meanwhile, as a function of limit)."""
    served = 0
    started = time.monotonic()
    for _ in range(attempts):
        try:
            call()
            served += 1
        except ClientError as err:
            elapsed_s = time.monotonic() - started
            # One second's burst plus the refill while the calls ran (however slow the machine).
            return err, served, lambda limit: limit * (1 + elapsed_s) + 1
    return pytest.fail(f"{attempts} requests in a row were never refused")


def wait_served(call):
    """Waits until `call` is served again. Tries once a second, the time the budget takes to
    refill: a call of several requests tried more often than the budget refills could keep
    spending it part-way and never find enough left (the client sends each request once)."""

    def attempt():
        try:
            return call() or True
        except ClientError as err:
            assert err.response["Error"]["Code"] == "SlowDown", err
            return None

    return wait_for(attempt, 30, "requests to be served again after backing off", interval_s=1.0)


def assert_slow_down(err):
    assert err.response["Error"]["Code"] == "SlowDown", err.response
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    headers = err.response["ResponseMetadata"]["HTTPHeaders"]
    assert int(headers["retry-after"]) >= 1, headers


def test_a_hot_bucket_is_told_to_slow_down_and_others_are_not(bucket_limited):
    setup = bucket_limited.client()  # retries on SlowDown
    for bucket in ("hot", "cold"):
        setup.create_bucket(Bucket=bucket)
        setup.put_object(Bucket=bucket, Key="k", Body=b"v1")
    s3 = no_retry_client(bucket_limited)

    err, served, most = first_slow_down(s3, lambda: s3.get_object(Bucket="hot", Key="k")["Body"].read())
    assert_slow_down(err)
    # Refused within about one second's budget. (No lower bound: the set-up calls just before
    # may have used the budget up already; that requests get through again is checked below.)
    assert served <= most(BUCKET_LIMIT), served

    # A refused write changes nothing.
    try:
        s3.put_object(Bucket="hot", Key="k", Body=b"v2-refused")
        refused_write = False
    except ClientError as put_err:
        assert_slow_down(put_err)
        refused_write = True

    # Another bucket on the same server has its own budget.
    assert s3.get_object(Bucket="cold", Key="k")["Body"].read() == b"v1"

    wait_served(lambda: s3.get_object(Bucket="hot", Key="k")["Body"].read())
    body = setup.get_object(Bucket="hot", Key="k")["Body"].read()
    assert body == (b"v1" if refused_write else b"v2-refused")


def test_a_range_over_its_budget_is_told_to_slow_down(range_limited):
    setup = range_limited.client()
    buckets = [f"spread-{i}" for i in range(4)]
    for bucket in buckets:
        setup.create_bucket(Bucket=bucket)
        setup.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3 = no_retry_client(range_limited)
    for b in buckets:
        wait_served(lambda b=b: s3.get_object(Bucket=b, Key="k")["Body"].read())

    # Round-robin over 4 buckets (there is no bucket limit here): the range's budget, shared by
    # all of them, runs out.
    turn = iter(range(10**9))
    err, served, most = first_slow_down(
        s3, lambda: s3.get_object(Bucket=buckets[next(turn) % len(buckets)], Key="k")["Body"].read()
    )
    assert_slow_down(err)
    # No lower bound: wait_served may have taken the budget's last requests (it succeeds as soon
    # as 4 are left); that requests are served again after backing off is checked below.
    assert served <= most(RANGE_LIMIT), served
    wait_served(lambda: s3.get_object(Bucket=buckets[1], Key="k")["Body"].read())

    # A client that retries with back-off (boto3's standard mode) gets through.
    assert setup.get_object(Bucket=buckets[0], Key="k")["Body"].read() == b"x"


def test_an_s3_get_takes_one_request_from_the_range_budget(range_limited):
    """S3 counts requests: a GET is one, though the front-end asks the owner twice (a HEAD that
    decides preconditions, then the read). After an idle second the whole burst is there; the
    GETs served before the first refusal show what each cost."""
    setup = range_limited.client()
    setup.create_bucket(Bucket="one-get")
    setup.put_object(Bucket="one-get", Key="k", Body=b"x")
    s3 = no_retry_client(range_limited)
    wait_served(lambda: s3.get_object(Bucket="one-get", Key="k")["Body"].read())
    time.sleep(2)  # the budget refills whole (a token bucket of RANGE_LIMIT)
    err, served, _ = first_slow_down(s3, lambda: s3.get_object(Bucket="one-get", Key="k")["Body"].read())
    assert_slow_down(err)
    # The burst less the bucket record's lookup (the front-end's cache entry may have expired)
    # and one of slack; charging the HEAD and the read apart would allow about half.
    assert served >= RANGE_LIMIT - 2, served
