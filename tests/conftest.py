import pytest

from stamp import Stamp


@pytest.fixture(scope="session")
def stamp(tmp_path_factory):
    """One stamp shared by the tests that do not stop or kill its nodes."""
    s = Stamp(tmp_path_factory.mktemp("stamp")).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def s3(stamp):
    return stamp.client()


@pytest.fixture
def bucket(s3, request):
    """A fresh bucket per test, named after it."""
    import hashlib
    import re

    # Readable, and unique per test even when parametrized names share a long prefix.
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    name = re.sub(r"[^a-z0-9]+", "-", "t-" + request.node.name.lower())[:45].strip("-") + "-" + digest
    s3.create_bucket(Bucket=name)
    return name
