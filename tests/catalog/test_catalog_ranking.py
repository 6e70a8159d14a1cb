"""Ranking: the HNSW index is really used, and fusion + examples fix what lexical-only and dense-only get wrong."""

from __future__ import annotations

import psycopg
import pytest

from isa.catalog import store
from isa.catalog.importer import parse_import
from isa.catalog.models import SearchFilters
from isa.catalog.service import CORPUS
from isa.core.search import Corpus, Query, Slice, Weights, hybrid_search, hybrid_sql
from isa.core.settings import Settings
from tests.catalog.conftest import READER, CountingEmbedder, catalog

pytestmark = pytest.mark.anyio

TOOLS = [
    ("merge_pdfs", "Combine several PDF documents into a single PDF file"),
    ("resize_image", "Change the width and height of a picture, keeping its aspect ratio"),
    ("send_sms", "Send a short text message to a mobile phone number"),
    ("translate_text", "Translate text from one language into another"),
    ("qr_code", "Generate a QR code image that encodes a URL or text"),
    ("kubectl_rollout", "Restart a Kubernetes deployment and wait for the rollout to finish"),
    ("ffprobe_media", "Inspect an audio or video file: codecs, duration, bitrate"),
    ("currency_rates", "Exchange rates between currencies, updated hourly"),
    ("book_table", "Reserve a table at a restaurant for a date and party size"),
    ("ocr_scan", "Extract the text from a scanned page or photo"),
    ("video_editor", "Cut, trim and join video clips into a movie"),
    ("play_music", "Play songs and playlists on a speaker"),
    ("restart_server", "Reboot a virtual machine or physical server"),
    ("find_restaurants", "Find restaurants near you by cuisine and rating"),
]
# (query, wanted tool): paraphrases that share no word with the tool (lexical misses them), and one that neither
# arm gets but a stored example query of the right tool does.
QUERIES = [
    ("stitch these documents together into one", "merge_pdfs"),
    ("shrink my holiday snapshot to half its dimensions", "resize_image"),
    ("what's the codec and bitrate of this mkv", "ffprobe_media"),
    ("kubectl rollout restart my api", "kubectl_rollout"),
    ("how many yen is a euro", "currency_rates"),
    ("grab a spot for four at an italian place friday", "book_table"),
    ("how long is this podcast episode in minutes", "ffprobe_media"),
]


async def test_discovery_ranks_through_the_hnsw_index(db_url: str, settings: Settings) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO mcp_unified_search_embeddings (item_type, item_name, server, qualified_name, description,"
            " content_hash, embedding, embedding_model)"
            " SELECT 'tool', 'synthetic' || g, 'synthetic', 'synthetic__' || g, 'synthetic tool ' || g, 'h',"
            " ARRAY(SELECT random() + s.g * 0 FROM generate_series(1, 384))::vector, 'all-MiniLM-L6-v2'"
            " FROM generate_series(1, 500) AS s(g)"
        )
        conn.execute("ANALYZE mcp_unified_search_embeddings")
        q = Query("synthetic tool", [0.05] * 384, "all-MiniLM-L6-v2", 384)
        slices = [Slice("tool", "item_type", "tool", 5), Slice("prompt", "item_type", "prompt", 3)]
        statement, params = hybrid_sql(CORPUS, q, slices, Weights(), {}, store.ITEM_COLUMNS)
        # pgvector 0.8 costs HNSW realistically and (rightly) sorts 500 rows exactly; what this checks is that the
        # statement can use the partial index (its predicate and cast match), so keep the planner off scan + sort.
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_sort = off")
        plan = "\n".join(r[0] for r in conn.execute(b"EXPLAIN " + statement.as_bytes(conn), params).fetchall())
        conn.execute("RESET enable_seqscan")
        conn.execute("RESET enable_sort")
        assert "Index Scan using mcp_unified_search_tool_minilm_idx" in plan, plan
        assert "mcp_query_examples_tool_minilm_idx" in plan, plan
        conn.execute("DELETE FROM mcp_unified_search_embeddings WHERE server = 'synthetic'")


async def test_ours_finds_what_lexical_only_and_dense_only_miss(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    examples = {
        "book_table": ["grab a spot for two at a sushi place tonight"],
        "ffprobe_media": ["how long does this audiobook chapter last"],
    }
    servers = [
        {
            "name": "handwritten",
            "tools": [{"name": n, "description": d, "examples": examples.get(n, [])} for n, d in TOOLS],
        }
    ]
    async with catalog(db_url, settings, embedder) as service:
        await service.import_servers(parse_import(servers))
        top: dict[str, list[str | None]] = {"lexical": [], "dense": [], "hybrid": []}
        for query, _ in QUERIES:
            for mode in top:
                hits = await service.search(query, SearchFilters(types=("tool",), max_results=1, mode=mode), READER)  # type: ignore[arg-type]
                top[mode].append(hits[0]["item"] if hits else None)
        wanted = [w for _, w in QUERIES]
        assert top["hybrid"] == wanted, top
        hits = {mode: sum(a == b for a, b in zip(found, wanted, strict=True)) for mode, found in top.items()}
        assert hits["lexical"] < len(wanted), top
        assert hits["dense"] < len(wanted), top
        await service.remove_server("handwritten")


async def test_a_corpus_without_postings_ranks_lexically_with_ts_rank_cd(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    """The shared core also serves tables that only have a tsvector (the knowledge domain's)."""
    servers = [{"name": "tsv", "tools": [{"name": n, "description": d} for n, d in TOOLS]}]
    async with catalog(db_url, settings, embedder) as service:
        await service.import_servers(parse_import(servers))
        plain = Corpus("mcp_unified_search_embeddings")
        vector = embedder.embed_batch(["reserve a restaurant table"])[0].tolist()
        for mode in ("lexical", "hybrid"):
            q = Query("reserve a restaurant table", vector, embedder.model_name, embedder.dimensions, mode)  # type: ignore[arg-type]
            async with service.db.connection() as conn:
                rows = await hybrid_search(
                    conn, plain, q, [Slice("tool", "item_type", "tool", 3)], Weights(), {}, store.ITEM_COLUMNS
                )
            assert rows[0]["item_name"] == "book_table", (mode, rows)
            assert all(r["votes"] == 0 for r in rows)
        await service.remove_server("tsv")
