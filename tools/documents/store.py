"""Where generated documents (lease PDFs) are kept until someone downloads them through `GET /documents/<id>`.

`DocumentStore` is the protocol; `FolderDocumentStore` keeps each document as files in one folder (`DOCUMENTS_DIR`),
`tools.documents.db_store.DatabaseDocumentStore` keeps them in the `documents` table. Ids are random (144 bits,
URL-safe), so an id alone reveals nothing and cannot be guessed; links to them are signed anyway (`links`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import secrets
import tempfile
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Protocol

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES: Final = 20 * 1024 * 1024
_ID: Final = re.compile(r"[A-Za-z0-9_-]{24}")  # what secrets.token_urlsafe(18) makes
_CONTENT_TYPE: Final = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*(?:; ?[\w.+-]+=[\w.+-]+)*", re.ASCII)


@dataclass(frozen=True)
class DocumentRef:
    """A stored document's description; `size` is in bytes and `created_at` is UTC."""

    id: str
    filename: str
    content_type: str
    size: int
    owner: str
    created_at: dt.datetime


class DocumentStore(Protocol):
    async def put(
        self, filename: str, content_type: str, data: bytes, owner: str, document_id: str | None = None
    ) -> DocumentRef:
        """Store `data` under a new id, or under `document_id` (one from `new_document_id`, chosen and recorded
        before the upload, so storing it again after a crash replaces it instead of leaving an orphan).
        `owner` is whose it is, e.g. the conversation key it was made for."""
        ...

    async def get(self, document_id: str) -> tuple[DocumentRef, bytes] | None:
        """The document and its bytes, or None when there is none with that id (or the id is malformed)."""
        ...


class InvalidDocument(ValueError):
    """`put` was given something that cannot be stored; the message says what."""


def new_document_id() -> str:
    return secrets.token_urlsafe(18)


def is_document_id(value: str) -> bool:
    """True for the shape `new_document_id` produces; anything else (a path, a quote, '..') is no document."""
    return _ID.fullmatch(value) is not None


def new_document_ref(
    filename: str, content_type: str, data: bytes, owner: str, document_id: str | None = None
) -> DocumentRef:
    """A ref for `put` (a fresh id unless one is given), after checking what every store needs to hold safely;
    InvalidDocument if not."""
    if document_id is not None and not is_document_id(document_id):
        raise InvalidDocument(f"{document_id!r} is not a document id")
    # The filename ends up in a Content-Disposition header and a Slack upload: no paths, no control characters.
    if not 0 < len(filename) <= 255 or filename in (".", "..") or any(c in "/\\" for c in filename):
        raise InvalidDocument(f"filename {filename!r} must be a plain file name of 1 to 255 characters")
    if _has_control(filename):
        raise InvalidDocument(f"filename {filename!r} holds control characters")
    if len(content_type) > 100 or not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidDocument(f"content type {content_type!r} is not a media type such as application/pdf")
    if not 0 < len(owner) <= 200 or _has_control(owner):
        raise InvalidDocument("owner must be 1 to 200 characters without control characters")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidDocument(f"document is {len(data)} bytes; at most {MAX_DOCUMENT_BYTES} are stored")
    now = dt.datetime.now(dt.UTC)
    return DocumentRef(document_id or new_document_id(), filename, content_type.lower(), len(data), owner, now)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text)


class FolderDocumentStore:
    """Documents as files in one folder: `<id>` holds the bytes, `<id>.json` the rest.

    Each file is written to a temporary name and renamed into place (atomic on POSIX), bytes first, description
    second: a document exists once its description does, and by then its bytes are complete, so a reader never
    sees half a document, even after a crash (leftover `.tmp-*` files are never an id). Files are readable by
    propbot's user only: leases hold tenants' contact details.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    async def put(
        self, filename: str, content_type: str, data: bytes, owner: str, document_id: str | None = None
    ) -> DocumentRef:
        ref = new_document_ref(filename, content_type, data, owner, document_id)
        await asyncio.to_thread(self._write, ref, data)
        return ref

    async def get(self, document_id: str) -> tuple[DocumentRef, bytes] | None:
        if not is_document_id(document_id):
            return None
        return await asyncio.to_thread(self._read, document_id)

    def _write(self, ref: DocumentRef, data: bytes) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # 144 random bits make a collision with another document's id practically impossible; the same id again is
        # the same document stored again, which a rename over it replaces whole.
        _write_atomically(self.directory / ref.id, data)
        description = {**asdict(ref), "created_at": ref.created_at.isoformat()}
        _write_atomically(self.directory / f"{ref.id}.json", json.dumps(description).encode())

    def _read(self, document_id: str) -> tuple[DocumentRef, bytes] | None:
        try:
            description: dict[str, Any] = json.loads((self.directory / f"{document_id}.json").read_bytes())
            data = (self.directory / document_id).read_bytes()
        except FileNotFoundError:
            return None
        ref = DocumentRef(**{**description, "created_at": dt.datetime.fromisoformat(description["created_at"])})
        if ref.size != len(data):
            # Only something outside propbot changes a stored file; serving it would hand out a damaged document.
            log.error("document %s in %s has %d bytes, expected %d", document_id, self.directory, len(data), ref.size)
            raise OSError(f"document {document_id} is damaged: {len(data)} bytes where {ref.size} were stored")
        return ref, data


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    # A rename is durable only once the folder is on disk; doing it after each keeps their order after a crash.
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
