"""Serving a blob that is not a local file (an S3 store): streamed a chunk at a time, with byte
ranges (a browser seeks in a video with them). Local files go out as ``web.FileResponse``."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from signaling.store import FileStore


def _span(request: web.Request, size: int) -> tuple[int, int] | None:
    """The bytes asked for, ``[start, stop)``; None if they cannot be served (416)."""
    wanted = request.http_range  # ValueError for a malformed header: handled by the caller
    start, stop = wanted.start, wanted.stop
    if start is None and stop is None:
        return 0, size
    if start is None:
        return None
    if start < 0:  # "bytes=-N": the last N bytes
        start, stop = max(size + start, 0), size
    stop = size if stop is None else min(stop, size)
    if start >= stop:
        return None
    return start, stop


async def stream_blob(
    request: web.Request,
    files: FileStore,
    sha256: str,
    size: int,
    content_type: str,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    try:
        span = _span(request, size) if size else (0, 0)
    except ValueError:
        span = None
    if span is None:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    start, stop = span
    partial = request.headers.get("Range") is not None and (start, stop) != (0, size)
    response = web.StreamResponse(status=206 if partial else 200, headers=dict(headers))
    response.content_type = content_type
    response.content_length = stop - start
    response.headers["Accept-Ranges"] = "bytes"
    if partial:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    await response.prepare(request)
    async for chunk in files.chunks(sha256, start, stop):
        await response.write(chunk)
    await response.write_eof()
    return response
