"""Documents in the database: the `documents` table and `DatabaseDocumentStore`.

The table is declared on the project's `Base`, so `Database.start()` creates it with the other tables, under the
same lock, as long as this module has been imported by then (importing `DatabaseDocumentStore` does it; the code
that wires the store in must do so before `start()`).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Index, Integer, LargeBinary, String, select
from sqlalchemy.orm import Mapped, mapped_column

from tools.db import Database
from tools.documents.store import DocumentRef, is_document_id, new_document_ref
from tools.tables import Base, UTCDateTime


class StoredDocument(Base):
    __tablename__ = "documents"
    __table_args__ = (
        CheckConstraint("size >= 0", name="ck_documents_size"),
        # "Documents made for this conversation, newest first" is the listing a later workflow will want.
        Index("ix_documents_owner_created", "owner", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    # Kept beside the bytes so a listing need not load them.
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    def ref(self) -> DocumentRef:
        return DocumentRef(self.id, self.filename, self.content_type, self.size, self.owner, self.created_at)


class DatabaseDocumentStore:
    """A `DocumentStore` on propbot's database (SQLite or PostgreSQL), one row per document."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(
        self, filename: str, content_type: str, data: bytes, owner: str, document_id: str | None = None
    ) -> DocumentRef:
        ref = new_document_ref(filename, content_type, data, owner, document_id)
        async with self._db.session() as session, session.begin():
            # merge: the same id stored again (a step resumed after a crash) replaces the row instead of failing.
            await session.merge(
                StoredDocument(
                    id=ref.id,
                    filename=ref.filename,
                    content_type=ref.content_type,
                    size=ref.size,
                    data=data,
                    owner=ref.owner,
                    created_at=ref.created_at,
                )
            )
        return ref

    async def get(self, document_id: str) -> tuple[DocumentRef, bytes] | None:
        if not is_document_id(document_id):
            return None
        async with self._db.session() as session:
            row = (await session.execute(select(StoredDocument).where(StoredDocument.id == document_id))).scalar()
            if row is None:
                return None
            return row.ref(), bytes(row.data)
