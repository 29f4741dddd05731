"""Document stores: the same contract for the folder and the database (SQLite and PostgreSQL), then what each
adds (atomic files with private permissions; a table created with the others)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import inspect

from tools.db import Database
from tools.documents.db_store import DatabaseDocumentStore, StoredDocument
from tools.documents.store import (
    MAX_DOCUMENT_BYTES,
    DocumentStore,
    FolderDocumentStore,
    InvalidDocument,
    is_document_id,
    new_document_id,
)

PDF = b"%PDF-1.3\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"


async def check_contract(store: DocumentStore) -> None:
    before = dt.datetime.now(dt.UTC)
    ref = await store.put("lease-L-2025-0042.pdf", "application/pdf", PDF, "slack:T1:C1")
    assert is_document_id(ref.id)
    assert (ref.filename, ref.content_type, ref.size, ref.owner) == (
        "lease-L-2025-0042.pdf",
        "application/pdf",
        len(PDF),
        "slack:T1:C1",
    )
    assert before <= ref.created_at <= dt.datetime.now(dt.UTC)

    found = await store.get(ref.id)
    assert found == (ref, PDF)

    empty = await store.put("empty.txt", "text/plain; charset=utf-8", b"", "teams:t:c")
    assert await store.get(empty.id) == (empty, b"")
    assert empty.id != ref.id

    # Concurrent puts each get their own id and keep their own bytes.
    refs = await asyncio.gather(
        *(store.put(f"doc-{n}.bin", "application/octet-stream", bytes([n]) * n, "o") for n in range(12))
    )
    assert len({r.id for r in refs}) == 12
    for n, r in enumerate(refs):
        assert await store.get(r.id) == (r, bytes([n]) * n)

    assert await store.get(new_document_id()) is None
    for malformed in ("", "../" + ref.id, ref.id + "/", ref.id[:-1], ref.id + ".json", f"{ref.id[:-1]}'", "."):
        assert await store.get(malformed) is None, malformed

    for filename in ("", ".", "..", "a/b.pdf", "..\\b.pdf", "a\nb.pdf", "x\u202e.pdf", "n" * 256):
        with pytest.raises(InvalidDocument, match="filename"):
            await store.put(filename, "application/pdf", PDF, "o")
    for content_type in ("pdf", "application/pdf\r\nX-Evil: 1", "application/pdf; a=b\n", "a/" + "b" * 100):
        with pytest.raises(InvalidDocument, match="content type"):
            await store.put("a.pdf", content_type, PDF, "o")
    for owner in ("", "o" * 201, "slack:T1\n:C1"):
        with pytest.raises(InvalidDocument, match="owner"):
            await store.put("a.pdf", "application/pdf", PDF, owner)
    with pytest.raises(InvalidDocument, match="at most"):
        await store.put("big.bin", "application/octet-stream", bytes(MAX_DOCUMENT_BYTES + 1), "o")


# -- folder ----------------------------------------------------------------------------------------


async def test_folder_store_keeps_the_contract(tmp_path: Path) -> None:
    await check_contract(FolderDocumentStore(tmp_path / "documents"))


async def test_folder_files_are_named_by_id_private_and_complete(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "documents"
    store = FolderDocumentStore(folder)
    ref = await store.put("lease.pdf", "Application/PDF", PDF, "slack:T1:C1")

    assert ref.content_type == "application/pdf"
    assert sorted(p.name for p in folder.iterdir()) == sorted([ref.id, f"{ref.id}.json"])  # no temporary left
    assert (folder / ref.id).read_bytes() == PDF
    assert json.loads((folder / f"{ref.id}.json").read_text())["filename"] == "lease.pdf"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # Another store on the same folder (another process, or after a restart) finds it.
    assert await FolderDocumentStore(folder).get(ref.id) == (ref, PDF)


async def test_a_document_exists_only_once_its_description_is_written(tmp_path: Path) -> None:
    store = FolderDocumentStore(tmp_path)
    ref = await store.put("lease.pdf", "application/pdf", PDF, "o")
    # What a crash between the two renames (or during the first) leaves behind: bytes without a description,
    # and a temporary file. Neither is a document.
    (tmp_path / f"{ref.id}.json").unlink()
    (tmp_path / ".tmp-abc123").write_bytes(b"half")
    assert await store.get(ref.id) is None
    assert await store.get(".tmp-abc123") is None


async def test_a_damaged_file_is_an_error_not_a_short_document(tmp_path: Path) -> None:
    store = FolderDocumentStore(tmp_path)
    ref = await store.put("lease.pdf", "application/pdf", PDF, "o")
    (tmp_path / ref.id).write_bytes(PDF[:100])
    with pytest.raises(OSError, match="damaged"):
        await store.get(ref.id)


async def test_an_unwritable_folder_fails_the_put(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes anywhere; a file where the folder should be fails for everyone.
        (tmp_path / "documents").write_text("not a folder")
    else:
        (tmp_path / "documents").mkdir(mode=0o500)
    with pytest.raises(OSError):
        await FolderDocumentStore(tmp_path / "documents").put("lease.pdf", "application/pdf", PDF, "o")


# -- database --------------------------------------------------------------------------------------


async def test_database_store_keeps_the_contract(database: Database) -> None:
    await check_contract(DatabaseDocumentStore(database))


async def test_start_creates_the_documents_table_with_the_others(database: Database) -> None:
    async with database.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    assert {"properties", "maintenance_requests", StoredDocument.__tablename__} <= tables


async def test_database_documents_survive_a_new_connection(database: Database) -> None:
    big = os.urandom(5 * 1024 * 1024)
    ref = await DatabaseDocumentStore(database).put("scan.bin", "application/octet-stream", big, "teams:t:c")
    other = Database(database.url.render_as_string(hide_password=False))
    try:
        await other.start()  # idempotent: the tables exist
        assert await DatabaseDocumentStore(other).get(ref.id) == (ref, big)
    finally:
        await other.close()
