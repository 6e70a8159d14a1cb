"""The one place the graph borrows from the knowledge base: reading a user's file and cutting text into chunks.

The knowledge code may move into its own package; only these two public functions (and the Limits it reads
with) are used, so a move changes the imports here and nowhere else.
"""

from __future__ import annotations

from isa.files.service import FilesService
from isa.knowledge.documents import Limits, UnreadableFile, read_text
from isa.knowledge.service import chunk_text

__all__ = ["Limits", "UnreadableFile", "chunk_text", "read_document"]


async def read_document(files: FilesService, user_id: str, file_id: str, limits: Limits) -> tuple[str, str]:
    """(text, filename) of one of the caller's files (txt, md, html, pdf); UnreadableFile says why not."""
    return await read_text(files, user_id, file_id, limits)
