"""The stock discovery encoders: int8 (stock MiniLM quantised; the default until the tuned one replaced it,
tests/catalog/test_tuned_encoder.py) and fp32, both selectable; switching re-embeds what no sync rewrites."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from isa.auth.principal import Principal
from isa.catalog.importer import parse_import
from isa.catalog.settings import CatalogSettings
from isa.core.embeddings import LocalMiniLM, shared_minilm
from isa.core.settings import Settings
from tests.catalog.conftest import CountingEmbedder, catalog

SERVERS = [
    {
        "name": "weather-co",
        "tools": [
            {"name": "forecast", "description": "Weather forecast for a city", "examples": ["will it rain in Leeds"]},
            {"name": "convert_currency", "description": "Convert an amount between currencies"},
        ],
    }
]
READER = Principal("encoder-reader", frozenset({"read"}), "api_key", None)


def test_the_stock_int8_encoder_is_selectable_and_close_to_the_stock_model() -> None:
    assert CatalogSettings(encoder="int8").encoder == "int8" and CatalogSettings().fusion == "zscore"
    int8, fp32 = shared_minilm("int8"), shared_minilm("fp32")
    assert int8.model_name == "all-MiniLM-L6-v2-int8" and fp32.model_name == "all-MiniLM-L6-v2"
    texts = ["will it rain in Leeds tomorrow", "convert 100 dollars to euros", "qwzx plimf vorbtang"]
    cos = (int8.embed_batch(texts) * fp32.embed_batch(texts)).sum(1)
    assert np.all(cos > 0.97), cos
    with pytest.raises(ValueError):
        LocalMiniLM(precision="fp16")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_switching_the_encoder_re_embeds_imported_tools_and_examples(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    async with catalog(db_url, settings, embedder) as old:  # fp32, as before the switch
        await old.import_servers(parse_import(SERVERS))
    async with catalog(db_url, settings, shared_minilm("int8")) as new:
        # Before the re-embedding the int8 query meets no int8 vector: the dense arm has nothing to offer.
        assert await new.reembed_stale() == 3  # two tools, one example
        assert await new.reembed_stale() == 0  # nothing left to do
        found = await new.discover("will it rain in Leeds", {"tools": 2}, READER)
        assert found["tools"][0]["tool"] == "forecast"
    with psycopg.connect(db_url) as conn:
        models = dict(
            conn.execute(
                "SELECT item_name, embedding_model FROM mcp_unified_search_embeddings WHERE server = 'weather-co'"
            ).fetchall()
        )
        examples = conn.execute("SELECT embedding_model FROM mcp_query_examples ORDER BY 1").fetchall()
    assert set(models.values()) == {"all-MiniLM-L6-v2-int8"}
    assert [r[0] for r in examples] == ["all-MiniLM-L6-v2", "all-MiniLM-L6-v2-int8"]
