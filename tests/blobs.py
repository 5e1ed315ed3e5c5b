"""Blob stores for tests: a directory, and a real S3-compatible server (moto in server mode, from
the test extras) started on a free port once per test session, a new bucket per test.

A test module imports the fixtures it uses (``from tests.blobs import blob_settings, s3_server``)
and runs against both stores by asking for ``blob_settings`` (settings overrides for
``running_server``) or ``blob_store`` (a ``FileStore``).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from signaling.store import FileStore, open_file_store
from tests.support import free_port

S3_KEYS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing"}
S3_REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a moto S3 server of this test session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not answer within 30 s") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def new_bucket(endpoint: str) -> str:
    from aiobotocore.session import get_session

    name = f"tandem-{secrets.token_hex(6)}"
    async with get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        await client.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["directory", "s3"])
async def blob_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings overrides that put a test server's blobs in a directory or in a bucket."""
    if request.param == "directory":
        return {"files_dir": tmp_path / "shared-files"}
    endpoint: str = request.getfixturevalue("s3_server")
    bucket = await new_bucket(endpoint)
    return {
        "files_url": f"s3://{bucket}/tandem",
        "s3_endpoint_url": endpoint,
        "s3_region": S3_REGION,
        **S3_KEYS,
    }


@pytest.fixture
async def blob_store(blob_settings: dict[str, Any], tmp_path: Path) -> AsyncIterator[FileStore]:
    store = await open_file_store(
        "attachments",
        directory=blob_settings.get("files_dir", tmp_path),
        url=blob_settings.get("files_url"),
        scratch=tmp_path / "scratch",
        endpoint_url=blob_settings.get("s3_endpoint_url"),
        region=blob_settings.get("s3_region"),
        access_key_id=blob_settings.get("s3_access_key_id"),
        secret_access_key=blob_settings.get("s3_secret_access_key"),
    )
    yield store
    await store.close()
