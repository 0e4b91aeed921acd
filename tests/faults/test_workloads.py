"""The fault runner's S3 clients send each operation once.

A client-side retry re-sends a conditional PUT as a new request (a new write id at the
front-end): when the first attempt committed and its answer was a 503, the retry is refused
with 412 and the checker reports "a 412 for a write that took effect". botocore's
`retries.max_attempts` counts retries after the first attempt, so `max_attempts: 1` allowed one;
`total_max_attempts: 1` is what turns them off. These tests count the requests a real botocore
client sends to a real HTTP server on loopback that answers every request with 503.
"""

import http.server
import sys
import threading
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import workloads  # noqa: E402
from stamp import NO_RETRIES  # noqa: E402

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
    b"<Message>Service is unavailable, please retry.</Message></Error>"
)


class AlwaysUnavailable(http.server.BaseHTTPRequestHandler):
    """Answers every request 503 ServiceUnavailable and counts them."""

    protocol_version = "HTTP/1.1"
    requests = 0
    lock = threading.Lock()

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        self.rfile.read(length)
        with AlwaysUnavailable.lock:
            AlwaysUnavailable.requests += 1
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(UNAVAILABLE)))
        self.end_headers()
        self.wfile.write(UNAVAILABLE)

    do_PUT = do_GET = do_POST = do_HEAD = do_DELETE = answer

    def log_message(self, *args):
        pass


@pytest.fixture
def unavailable_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AlwaysUnavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    AlwaysUnavailable.requests = 0
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_fault_workload_client_sends_a_conditional_put_once(unavailable_endpoint):
    s3 = workloads.client(unavailable_endpoint, ("AKTEST", "secret"))
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="b", Key="cas/1", Body=b"v", IfMatch='"etag"')
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert AlwaysUnavailable.requests == 1


def test_the_no_retry_setting_of_the_pytest_stamps_sends_once(unavailable_endpoint):
    s3 = boto3.client(
        "s3",
        endpoint_url=unavailable_endpoint,
        aws_access_key_id="AKTEST",
        aws_secret_access_key="secret",
        region_name="us-east-1",
        config=Config(retries=NO_RETRIES, s3={"addressing_style": "path"}),
    )
    with pytest.raises(ClientError):
        s3.put_object(Bucket="b", Key="k", Body=b"v", IfNoneMatch="*")
    assert AlwaysUnavailable.requests == 1
