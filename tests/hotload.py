"""A sustained write load on one key prefix, for the partition-motion tests and the hot-prefix
benchmark: N threads PUT fresh keys under one prefix as fast as they are answered, without
client-side retries, so 503 SlowDown answers are counted, not hidden. Every acknowledged key
is remembered (and checked afterwards by the callers)."""

import threading
import time

from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, ReadTimeoutError

from stamp import NO_RETRIES


class HotWriters:
    def __init__(self, stamp, bucket, prefix, threads=8, body=b"x" * 64):
        self.stamp = stamp
        self.bucket = bucket
        self.prefix = prefix
        self.threads = threads
        self.body = body
        self.lock = threading.Lock()
        self.acked = []  # (time, key)
        self.slowdowns = []  # times
        self.errors = []  # (time, message)
        self.stop_event = threading.Event()
        self.workers = []

    def _client(self):
        return self.stamp.client(
            retries=NO_RETRIES, connect_timeout=5, read_timeout=30
        )

    def _run(self, worker):
        client = self._client()
        i = 0
        while not self.stop_event.is_set():
            # Spread over the prefix (as many writers on one prefix do), in a stable order.
            key = f"{self.prefix}{(i * 7919 + worker * 104729) % 1000003:07d}-{worker}-{i}"
            i += 1
            try:
                client.put_object(Bucket=self.bucket, Key=key, Body=self.body)
                with self.lock:
                    self.acked.append((time.monotonic(), key))
            except ClientError as err:
                code = err.response.get("Error", {}).get("Code")
                status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                with self.lock:
                    if code == "SlowDown" or status == 503:
                        self.slowdowns.append(time.monotonic())
                    else:
                        self.errors.append((time.monotonic(), f"{status} {code}"))
                if code == "SlowDown":
                    retry_after = float(err.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("retry-after", "0") or 0)
                    self.stop_event.wait(min(retry_after, 0.2))
            except (BotoConnectionError, ReadTimeoutError) as err:
                with self.lock:
                    self.errors.append((time.monotonic(), type(err).__name__))
                self.stop_event.wait(0.1)

    def start(self):
        for worker in range(self.threads):
            thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
            thread.start()
            self.workers.append(thread)
        return self

    def stop(self):
        self.stop_event.set()
        for thread in self.workers:
            thread.join(timeout=60)

    def acked_between(self, start, end):
        with self.lock:
            return sum(1 for at, _ in self.acked if start <= at < end)

    def rate(self, seconds):
        """Acknowledged PUTs per second over the last `seconds`."""
        now = time.monotonic()
        return self.acked_between(now - seconds, now) / seconds

    def slowdowns_since(self, start):
        with self.lock:
            return sum(1 for at in self.slowdowns if at >= start)

    def keys(self):
        with self.lock:
            return [key for _, key in self.acked]
