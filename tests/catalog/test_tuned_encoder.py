"""Our tuned encoder (`[catalog] encoder = "tuned"`): shipped in the package, selectable, its own vectors."""

from __future__ import annotations

import numpy as np
import pytest

from isa.auth.principal import Principal
from isa.catalog.importer import parse_import
from isa.catalog.settings import CatalogSettings
from isa.core.embeddings import TUNED_MODEL_NAME, LocalMiniLM, shared_minilm, tuned_graph
from isa.core.settings import Settings
from tests.catalog.conftest import catalog

SERVERS = [
    {
        "name": "weather-co",
        "tools": [
            {"name": "forecast", "description": "Weather forecast for a city"},
            {"name": "convert_currency", "description": "Convert an amount between currencies"},
            {"name": "send_email", "description": "Send an email message to a recipient"},
        ],
    }
]
READER = Principal("tuned-reader", frozenset({"read"}), "api_key", None)
TEXTS = ["will it rain in Leeds tomorrow", "convert 100 dollars to euros", "qwzx plimf vorbtang"]


def test_the_tuned_encoder_is_packaged_small_and_selectable() -> None:
    assert tuned_graph().is_file() and tuned_graph().stat().st_size < 30_000_000
    assert CatalogSettings(encoder="tuned").encoder == "tuned"
    tuned, stock = shared_minilm("tuned"), shared_minilm("int8")
    assert tuned.model_name == TUNED_MODEL_NAME != stock.model_name
    a, b = tuned.embed_batch(TEXTS), stock.embed_batch(TEXTS)
    assert a.shape == (3, 384) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-3)
    cos = (a * b).sum(1)
    assert np.all(cos > 0.5) and not np.allclose(a, b, atol=1e-3), cos  # a fine-tune of the same model, not it
    # Another graph file of the same inputs runs under the name given (how candidates are measured).
    other = LocalMiniLM(graph_file=tuned_graph(), model_name="candidate")
    # (int8 activations are quantised per batch, so one text alone lands close to, not exactly on, its batch vector)
    assert other.model_name == "candidate" and float(other.embed_batch(TEXTS[:1])[0] @ a[0]) > 0.98


def test_the_tuned_encoder_is_the_default_and_each_encoder_has_its_own_floor(settings: Settings) -> None:
    configured = settings.section("catalog", CatalogSettings)
    assert configured.encoder == "tuned" and configured.floor().min_similarity == 0.24
    assert CatalogSettings(encoder="int8").floor().min_similarity == 0.2  # stock, as chosen for it
    assert CatalogSettings(encoder="fp32").floor().min_similarity == 0.2
    # A floor set by the deployment holds whatever the encoder; 0 still turns it off.
    assert CatalogSettings(encoder="tuned", min_similarity=0.3).floor().min_similarity == 0.3
    assert CatalogSettings(encoder="tuned", min_similarity=0).floor().off


@pytest.mark.anyio
async def test_a_catalog_on_the_tuned_encoder_ranks_with_its_own_vectors(db_url: str, settings: Settings) -> None:
    async with catalog(db_url, settings, shared_minilm("int8")) as old:
        await old.import_servers(parse_import(SERVERS))
    async with catalog(db_url, settings, shared_minilm("tuned")) as new:
        assert await new.reembed_stale() == 3  # rows of the stock encoder are re-embedded, none is reused
        assert await new.reembed_stale() == 0
        found = await new.discover("will it rain in Leeds", {"tools": 3}, READER)
        assert found["tools"][0]["tool"] == "forecast"
        assert not (await new.discover("qwzx plimf vorbtang", {"tools": 3}, READER))["tools"]  # the floor holds
