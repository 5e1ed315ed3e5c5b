"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph, Garage...), through aiobotocore.

A blob is the object ``prefix + ab/abcd...``. Files go up in parts of ``PART_BYTES`` read one at
a time (a 100 MB clip never sits in memory whole); an object already there (same digest, same
bytes) is not sent again. Reads stream the object, or a byte range of it, a chunk at a time.
Files on their way in (uploads being checked, call clips) are made in a local ``scratch``
directory, then uploaded when finished.

aiobotocore is the optional extra ``tandem[s3]``; ``Settings.refusals`` refuses ``--files-url``
when it is not installed. Credentials come from ``--s3-access-key-id``/``--s3-secret-access-key``
when given, else from botocore's usual chain (``AWS_ACCESS_KEY_ID``..., ``~/.aws``, an instance
role).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from signaling.store.files import CHUNK, check_digest, file_digest

PART_BYTES = 8 * 1024 * 1024
"""Bytes of one part of a multipart upload (S3's minimum is 5 MiB): files larger than this go
up in parts, each read from disk when it is sent."""


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3://bucket/prefix URL: {url}")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def _missing(exc: Exception) -> bool:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in {"404", "NoSuchKey", "NotFound"} or status == 404


class S3FileStore:
    def __init__(
        self,
        client: Any,
        exit_stack: contextlib.AsyncExitStack,
        bucket: str,
        prefix: str,
        scratch: Path,
    ) -> None:
        self._client = client
        self._exit_stack = exit_stack
        self.bucket = bucket
        self.prefix = prefix
        self.scratch = scratch

    @classmethod
    async def open(
        cls,
        url: str,
        scratch: Path,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> S3FileStore:
        """A store on ``s3://bucket/prefix``; fails (saying why) if the bucket cannot be read."""
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        bucket, prefix = parse_s3_url(url)
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=AioConfig(
                    connect_timeout=10,
                    read_timeout=60,
                    retries={"max_attempts": 3, "mode": "standard"},
                    # Path-style works on every S3-compatible server; virtual hosts need DNS.
                    s3={"addressing_style": "path"},
                ),
            )
        )
        try:
            await client.head_bucket(Bucket=bucket)
        except Exception as exc:
            await stack.aclose()
            raise RuntimeError(f"the bucket of {url} cannot be read: {exc}") from exc
        return cls(client, stack, bucket, prefix, scratch)

    def key(self, sha256: str) -> str:
        check_digest(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256}"

    def local_path(self, sha256: str) -> Path | None:
        return None

    def temp_dir(self) -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True)
        return self.scratch

    async def close(self) -> None:
        await self._exit_stack.aclose()

    # ------------------------------------------------------------------ writes

    async def put_bytes(self, data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        if await self.size(digest) is None:
            await self._client.put_object(Bucket=self.bucket, Key=self.key(digest), Body=data)
        return digest, len(data)

    async def put_file(self, source: Path) -> tuple[str, int]:
        digest, size = await asyncio.to_thread(file_digest, source)
        if await self.size(digest) is None:
            if size <= PART_BYTES:
                body = await asyncio.to_thread(source.read_bytes)
                await self._client.put_object(Bucket=self.bucket, Key=self.key(digest), Body=body)
            else:
                await self._put_parts(source, self.key(digest))
        await asyncio.to_thread(source.unlink)
        return digest, size

    async def _put_parts(self, source: Path, key: str) -> None:
        started = await self._client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = started["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            with source.open("rb") as handle:
                number = 1
                while chunk := await asyncio.to_thread(handle.read, PART_BYTES):
                    sent = await self._client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    parts.append({"ETag": sent["ETag"], "PartNumber": number})
                    number += 1
            await self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                )
            raise

    async def delete(self, sha256: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    # ------------------------------------------------------------------ reads

    async def size(self, sha256: str) -> int | None:
        try:
            head = await self._client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    async def read(self, sha256: str) -> bytes:
        try:
            got = await self._client.get_object(Bucket=self.bucket, Key=self.key(sha256))
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(self.key(sha256)) from exc
            raise
        async with got["Body"] as body:
            data: bytes = await body.read()
        return data

    async def chunks(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            return
        ranged: dict[str, str] = {}
        if start > 0 or end is not None:
            # (Never on a whole object: a range of an empty one is refused.)
            ranged["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            got = await self._client.get_object(Bucket=self.bucket, Key=self.key(sha256), **ranged)
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(self.key(sha256)) from exc
            raise
        async with got["Body"] as body:
            async for chunk in body.iter_chunks(CHUNK):
                yield chunk
