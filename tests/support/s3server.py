"""An S3-compatible server on loopback for the tests: moto's standalone server
(``moto_server``, from the ``moto[server]`` test dependency) as the test double of the S3
API, started as a subprocess on a free 127.0.0.1 port.

``S3Server.env`` holds the AWS variables that point boto3 (in this process or in a
``reconciler`` subprocess) at it with dummy credentials; ``bucket_url()`` makes a fresh
``s3://bucket/prefix`` per test so tests sharing the server never see each other's objects.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support.serving import free_port, stop

BUCKET = "reconciler-test"
_prefixes = itertools.count()
_session: Any = None


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def client(self) -> Any:
        """A client of this server (its own connections; close it). Made from one
        session, so the service model is loaded once per test run."""
        global _session
        import boto3

        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test")

    def bucket_url(self, name: str) -> str:
        """A fresh ``s3://reconciler-test/<name>-<n>`` (an empty prefix of the shared bucket)."""
        return f"s3://{BUCKET}/{name}-{next(_prefixes)}"

    def keys(self, url: str) -> list[str]:
        """Every object key under the ``s3://`` URL's prefix."""
        bucket, _, prefix = url[len("s3://"):].partition("/")
        client = self.client()
        try:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))
        finally:
            client.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def aws_env(endpoint: str) -> dict[str, str]:
    """AWS variables for the test server; the real ~/.aws of whoever runs the tests is never read."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def moto_server_binary() -> str:
    path = shutil.which("moto_server", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                             os.environ.get("PATH", "")]))
    if path is None:
        raise AssertionError("moto_server is not installed: pip install 'moto[server]>=5' "
                             "(scripts/setup.sh --test does it)")
    return path


def start_s3_server(workdir: Path) -> S3Server:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = workdir / "moto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([moto_server_binary(), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(endpoint, proc, log_path, aws_env(endpoint))
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"moto_server exited {proc.returncode}:\n{server.log()}")
            try:
                with requests.get(endpoint + "/moto-api/", timeout=2):
                    break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"moto_server did not answer in 30 s:\n{server.log()}") from None
                time.sleep(0.1)
        client = server.client()
        try:
            client.create_bucket(Bucket=BUCKET)
        finally:
            client.close()
    except BaseException:
        stop(proc)
        raise
    return server
