"""Replication under the nemeses (two stamps, issue 16 item 8): a versioned bucket on the first
stamp replicates to one on the second while a writer writes versions to it and a watcher reads
the destination. Checked, as anomalies or losses:

- below the watermark: every version acknowledged before the destination's
  `x-strata-replicated-through` is in the listing read after it;
- commit order: a destination never shows a key's version before one committed ahead of it
  (what it shows of a key is a prefix of the source's history of that key, oldest first);
- never twice: a version id appears once;
- by the end (after every fault healed): every acknowledged version has arrived.
"""

import datetime
import threading
import time

from botocore.exceptions import BotoCoreError, ClientError

import workloads

THROUGH = "x-strata-replicated-through"
KEYS = 20
ROLE = "arn:aws:iam::000000000000:role/replication"
# How long the end waits for every acknowledged version to arrive.
CATCH_UP_S = 180


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _through(s3, bucket):
    value = s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPHeaders"].get(THROUGH)
    if value is None:
        return None
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


def _per_key(s3, bucket):
    """Per key, its version ids oldest first (delete markers are not written here)."""
    keys = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            keys.setdefault(v["Key"], []).insert(0, v["VersionId"])
    return keys


class ReplicationWatch:
    def __init__(self, target, seed, stop):
        self.credentials = target.credentials()
        self.source_ends = target.endpoints_of(target.stamps()[0])
        self.dest_ends = target.endpoints_of(target.stamps()[1])
        self.source, self.dest = f"faults-{seed}-repl-src", f"faults-{seed}-repl-dst"
        self.stop = stop
        self.acked = []  # (client time after the answer, key, version id)
        self.seen = []  # the destination's per-key histories as read during the run
        self.anomalies, self.lost = [], []
        self.threads = []
        self.watermark_checks = 0
        # One client per endpoint and thread (boto3 clients are slow to make, and not shared).
        self.clients = threading.local()

    def _client(self, ends, i=0):
        endpoint = ends[i % len(ends)]
        made = self.clients.__dict__.setdefault("by_endpoint", {})
        if endpoint not in made:
            made[endpoint] = workloads.client(endpoint, self.credentials)
        return made[endpoint]

    def setup(self):
        src, dst = self._client(self.source_ends), self._client(self.dest_ends)
        src.create_bucket(Bucket=self.source)
        dst.create_bucket(Bucket=self.dest)
        for s3, bucket in [(src, self.source), (dst, self.dest)]:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        src.put_bucket_replication(Bucket=self.source, ReplicationConfiguration={
            "Role": ROLE,
            "Rules": [{"ID": "faults", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
                       "DeleteMarkerReplication": {"Status": "Enabled"},
                       "Destination": {"Bucket": f"arn:aws:s3:::{self.dest}"}}],
        })

    def start(self):
        self.threads = [threading.Thread(target=self._write), threading.Thread(target=self._watch)]
        for thread in self.threads:
            thread.start()

    def _write(self):
        i = 0
        while not self.stop.is_set():
            key = f"r{i % KEYS:02}"
            try:
                s3 = self._client(self.source_ends, i)
                vid = s3.put_object(Bucket=self.source, Key=key, Body=f"{key} {i}".encode())["VersionId"]
                self.acked.append((_now(), key, vid))
            except (BotoCoreError, ClientError):
                time.sleep(0.1)  # outcome unknown: not required to arrive
            i += 1

    def _watch(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                s3 = self._client(self.dest_ends, i)
                through = _through(s3, self.dest)
                shown = _per_key(s3, self.dest)
            except (BotoCoreError, ClientError):
                time.sleep(0.5)
                continue
            self.seen.append(shown)
            if through is not None:
                present = {(k, v) for k, ids in shown.items() for v in ids}
                missing = [(k, v) for at, k, v in list(self.acked) if at < through and (k, v) not in present]
                self.watermark_checks += 1
                for key, vid in missing[:5]:
                    self.anomalies.append(f"version {vid} of {key} acknowledged before the watermark "
                                          f"{through.isoformat()} is missing on the destination")
            time.sleep(0.5)

    def finish(self):
        """After the workloads stopped and every fault healed: waits for every acknowledged
        version to arrive, then checks order and uniqueness. Answers (lost, anomalies)."""
        for thread in self.threads:
            thread.join(timeout=60)
        wanted = {(k, v) for _, k, v in self.acked}
        deadline = time.monotonic() + CATCH_UP_S
        final = {}
        while True:
            try:
                final = _per_key(self._client(self.dest_ends), self.dest)
            except (BotoCoreError, ClientError):
                final = {}
            present = {(k, v) for k, ids in final.items() for v in ids}
            if wanted <= present or time.monotonic() > deadline:
                break
            time.sleep(1)
        self.lost += [f"replicated version {v} of {k} never arrived" for k, v in sorted(wanted - present)]
        source = _per_key(self._client(self.source_ends), self.source)
        for key, ids in final.items():
            if len(set(ids)) != len(ids):
                self.anomalies.append(f"{key}: a version arrived twice: {ids}")
            if ids != source.get(key, [])[: len(ids)]:
                self.anomalies.append(f"{key}: the destination's history {ids} is not the source's order")
        for shown in self.seen:
            for key, ids in shown.items():
                if ids != source.get(key, [])[: len(ids)]:
                    self.anomalies.append(f"{key}: shown out of commit order during the run: {ids}")
                    break
        return self.lost, self.anomalies

    def summary(self):
        return (f"replication: {len(self.acked)} versions acknowledged, {len(self.seen)} reads of the "
                f"destination ({self.watermark_checks} under a watermark), {len(self.lost)} lost, "
                f"{len(self.anomalies)} anomalies")
