"""Clip uploads from edges (contract 5): chunked, resumable, SHA-256 checked end to end.

    POST /api/edge/uploads          start or resume → {"upload_id", "offset", "complete"}
    PUT  /api/edge/uploads/{id}     one chunk: Content-Range, X-Chunk-SHA256, raw body
    GET  /api/edge/uploads/{id}     → {"offset", "complete"}

Errors have the app's shape, ``{"error": {"code", "message"}}``; an offset mismatch adds
the server's offset at the top level: ``{"error": {...}, "offset": n}``.
The work is in app/uploads.py.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from app.api.edge import edge_camera_id
from app.clip_schemas import UploadProgress, UploadStart, UploadStarted
from app.errors import error_body
from app.schemas import ClipOut, ErrorResponse
from app.uploads import (
    MAX_CHUNK_BYTES,
    ChunkRange,
    Progress,
    UploadError,
    UploadManager,
    parse_content_range,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/edge/uploads", tags=["edge"])

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")

CameraId = Annotated[str, Depends(edge_camera_id)]


def _error(exc: UploadError) -> JSONResponse:
    body = error_body(exc.code, exc.message)
    if exc.offset is not None:
        body["offset"] = exc.offset
    return JSONResponse(body, status_code=exc.status)


def _manager(request: Request) -> UploadManager:
    manager: UploadManager = request.app.state.uploads
    return manager


def _progress(progress: Progress) -> UploadProgress:
    clip = ClipOut.model_validate(progress.clip) if progress.clip is not None else None
    return UploadProgress(offset=progress.offset, complete=progress.complete, clip=clip)


def _responses(*codes: int) -> dict[int | str, dict[str, object]]:
    text = {
        401: "Missing, unknown or revoked edge credential",
        404: "unknown_event / unknown_upload",
        409: "offset_mismatch (with the server's offset)",
        413: "too_large / chunk_too_large",
        422: "Malformed; bad_range; chunk_checksum_mismatch; checksum_mismatch",
        503: "storage_unavailable (S3 down): retry",
        507: "storage_full: retry later",
    }
    return {c: {"model": ErrorResponse, "description": text[c]} for c in codes}


@router.post(
    "",
    summary="Start or resume the upload of an event's clip",
    response_model=UploadStarted,
    responses=_responses(401, 404, 413, 422, 503, 507),
)
async def start_upload(body: UploadStart, camera_id: CameraId, request: Request) -> Response:
    try:
        result = await _manager(request).start(camera_id, body)
    except UploadError as exc:
        return _error(exc)
    out = UploadStarted(upload_id=result.upload_id, offset=result.offset, complete=result.complete)
    return JSONResponse(out.model_dump(mode="json"))


async def _read_chunk(request: Request, expected: int) -> bytes:
    """The body, refused (422 bad_range) as soon as it is longer than ``expected``."""
    buffer = bytearray()
    async for piece in request.stream():
        buffer += piece
        if len(buffer) > expected:
            raise UploadError(
                422, "bad_range", f"The body is longer than the {expected} bytes announced."
            )
    return bytes(buffer)


@router.put(
    "/{upload_id}",
    summary="Append one chunk (raw body, at most 16 MiB)",
    response_model=UploadProgress,
    response_model_exclude_none=True,
    responses=_responses(401, 404, 409, 413, 422, 503, 507),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def put_chunk(
    upload_id: str,
    request: Request,
    camera_id: CameraId,
    content_range: Annotated[
        str | None, Header(alias="Content-Range", description="bytes START-END/TOTAL")
    ] = None,
    chunk_sha256: Annotated[
        str | None, Header(alias="X-Chunk-SHA256", description="SHA-256 of this chunk (hex)")
    ] = None,
) -> Response:
    manager = _manager(request)
    try:
        rng: ChunkRange = parse_content_range(content_range)
        if chunk_sha256 is None or not _SHA256.match(chunk_sha256):
            raise UploadError(
                422, "validation_error", "X-Chunk-SHA256 must be the chunk's SHA-256 (64 hex)."
            )
        if rng.length > MAX_CHUNK_BYTES:
            raise UploadError(
                413, "chunk_too_large", f"A chunk is at most {MAX_CHUNK_BYTES} bytes."
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) != rng.length:
            raise UploadError(
                422,
                "bad_range",
                f"Content-Length {declared} differs from the {rng.length} bytes of Content-Range.",
            )
        done = await manager.precheck(camera_id, upload_id, rng)
        if done is not None:
            return JSONResponse(_progress(done).model_dump(mode="json", exclude_none=True))
        try:
            data = await _read_chunk(request, rng.length)
        except ClientDisconnect:
            # The connection broke mid-chunk: nothing was appended; the edge resumes
            # from the offset it gets with its next POST.
            log.info(
                "clip chunk cut off",
                extra={"camera": camera_id, "upload": upload_id, "start": rng.start},
            )
            return Response(status_code=400)
        progress = await manager.append(camera_id, upload_id, rng, chunk_sha256, data)
    except UploadError as exc:
        return _error(exc)
    return JSONResponse(_progress(progress).model_dump(mode="json", exclude_none=True))


@router.get(
    "/{upload_id}",
    summary="How far an upload is",
    response_model=UploadProgress,
    response_model_exclude_none=True,
    responses=_responses(401, 404),
)
async def upload_status(upload_id: str, request: Request, camera_id: CameraId) -> Response:
    try:
        progress = await _manager(request).status(camera_id, upload_id)
    except UploadError as exc:
        return _error(exc)
    return JSONResponse({"offset": progress.offset, "complete": progress.complete})
