"""PDF documents for add_document: text layer read from the user's storage, bounds, clear errors, all-or-nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from isa.core.db import Database
from isa.core.settings import Settings
from isa.knowledge.documents import Limits, UnreadableFile, pdf_text
from isa.knowledge.service import KnowledgeService
from isa.memory.service import MemoryService
from isa.memory.settings import MemorySettings
from tests.knowledge.pdfs import CORRUPT_PDF, encrypted, make_pdf, upload
from tests.support.mcp_servers import sql
from tests.support.memory import MemoryKeys, ToolFailed, call

MANUAL = [
    "Harbour manual. The lighthouse on Skerry Point is kept by Oriel Vance, who rows out every Tuesday. " * 3,
    "Fees. Mooring at the inner harbour costs 12 crowns a night; the outer buoys are free in winter. " * 3,
]


def knowledge_rows(db_url: str, user: str) -> int:
    return int(sql(db_url, "SELECT count(*) AS n FROM user_knowledge WHERE user_id = %s", (user,))[0]["n"])


def test_the_text_of_every_page_is_read_in_order() -> None:
    text = pdf_text(make_pdf(MANUAL), Limits())
    assert "Oriel Vance" in text and "12 crowns" in text
    assert text.index("Skerry Point") < text.index("outer buoys")


@pytest.mark.parametrize(
    ("data", "limits", "message"),
    [
        (encrypted(make_pdf(MANUAL), password="s3cret"), Limits(), "encrypted"),
        (CORRUPT_PDF, Limits(), "not a readable PDF"),
        (b"%PDF-1.4\n", Limits(), "not a readable PDF"),
        (make_pdf(["", ""]), Limits(), "no text layer"),
        (make_pdf(["one", "two", "three"]), Limits(max_pdf_pages=2), "has 3 pages; at most 2"),
        (make_pdf(MANUAL), Limits(max_chars=100), "longer than 100 characters"),
    ],
    ids=["encrypted", "corrupt", "truncated", "no-text", "too-many-pages", "too-much-text"],
)
def test_unreadable_pdfs_are_refused_with_a_clear_reason(data: bytes, limits: Limits, message: str) -> None:
    with pytest.raises(UnreadableFile, match=message):
        pdf_text(data, limits)


@pytest.mark.anyio
async def test_a_pdf_in_the_users_storage_becomes_a_searchable_document(
    node: str, mkeys: MemoryKeys, db_url: str
) -> None:
    file_id = upload(node, "mem-alice", mkeys.alice, "harbour.pdf", make_pdf(MANUAL), "application/pdf")
    out = await call(node, mkeys.alice, "add_document", {"file_id": file_id, "chunk_size": 200, "overlap": 40})
    assert out["source_document"] == "harbour.pdf" and out["chunks"] >= 3
    found = await call(node, mkeys.alice, "search_knowledge", {"query": "who keeps the lighthouse?", "top_k": 1})
    assert "Oriel Vance" in found["results"][0]["content"]
    assert found["results"][0]["document_id"] == out["document_id"]
    with pytest.raises(ToolFailed, match="no file"):  # another user's PDF is just "no file"
        await call(node, mkeys.bob, "add_document", {"file_id": file_id})


@pytest.mark.anyio
async def test_an_encrypted_or_corrupt_pdf_fails_clearly_and_stores_nothing(
    node: str, mkeys: MemoryKeys, db_url: str
) -> None:
    before = knowledge_rows(db_url, "mem-bob")
    locked = upload(
        node, "mem-bob", mkeys.bob, "locked.pdf", encrypted(make_pdf(MANUAL), password="s3cret"), "application/pdf"
    )
    broken = upload(node, "mem-bob", mkeys.bob, "broken.pdf", CORRUPT_PDF, "application/pdf")
    with pytest.raises(ToolFailed, match="encrypted"):
        await call(node, mkeys.bob, "add_document", {"file_id": locked})
    with pytest.raises(ToolFailed, match="not a readable PDF"):
        await call(node, mkeys.bob, "add_document", {"file_id": broken})
    assert knowledge_rows(db_url, "mem-bob") == before


class FixedEmbedder:
    """Same vector for every text: this test is about the transaction, not the ranking."""

    model_name = "all-MiniLM-L6-v2"
    dimensions = 384

    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * 383 for _ in texts]


@pytest.fixture
async def service(settings: Settings, db_url: str) -> AsyncIterator[KnowledgeService]:
    db = Database(db_url, settings)
    await db.open()
    try:
        yield KnowledgeService(MemoryService(db, FixedEmbedder(), MemorySettings()))  # type: ignore[arg-type]
    finally:
        await db.close()


@pytest.mark.anyio
async def test_a_document_whose_last_chunk_fails_to_store_leaves_no_chunk_behind(
    service: KnowledgeService, db_url: str, mkeys: MemoryKeys
) -> None:
    before = knowledge_rows(db_url, "mem-reader")
    # Postgres refuses NUL in text: the third insert fails after two succeeded in the same transaction.
    with pytest.raises(psycopg.errors.DataError):
        await service._insert("mem-reader", ["page one", "page two", "page\x00three"], {}, "bad.pdf", document=True)
    assert knowledge_rows(db_url, "mem-reader") == before
    # The public path strips NUL (PDF text layers can contain it) and stores every chunk.
    out = await service.add_document("mem-reader", "page one\x00 page two " * 40, 100, 20, {}, "ok.pdf")
    assert knowledge_rows(db_url, "mem-reader") == before + out["chunks"] > before
