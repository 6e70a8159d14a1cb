"""The relevance floor per clause: a two-intent request's second tool is not cut for being half of the request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from isa.auth.principal import Principal
from isa.catalog.importer import parse_import
from isa.catalog.service import CatalogService
from isa.catalog.settings import CatalogSettings
from isa.catalog.text import MAX_CLAUSES, clauses
from isa.core.db import Database
from isa.core.embeddings import shared_minilm
from isa.core.settings import Settings
from tests.catalog.conftest import CountingEmbedder, catalog

SERVERS = [
    {
        "name": "office",
        "tools": [
            {"name": "forecast", "description": "Weather forecast for a city"},
            {"name": "convert_currency", "description": "Convert an amount between currencies"},
            {"name": "send_email", "description": "Send an email message to a recipient"},
            {"name": "create_event", "description": "Create a calendar event with a title, start and end time"},
            {"name": "translate_text", "description": "Translate text into another language"},
        ],
    }
]
READER = Principal("clause-reader", frozenset({"read"}), "api_key", None)
# Each request's second tool is under the default floor (0.24) for the whole request, above it for its clause
# (pooled from the request's own run: 0.204 -> 0.262 for send_email, 0.196 -> 0.265 for create_event). A known
# miss of pooling (docs/discovery.md): "email my landlord about the broken heating, and also convert 100 dollars to
# euros" keeps send_email only with each clause embedded alone (0.271; pooled 0.200).
TWO_INTENTS = {
    "send an email to my landlord about the heating, and also convert 100 dollars to euros": "send_email",
    "put a dentist appointment in my calendar for Tuesday. Then check the weather in Porto": "create_event",
}


def test_a_request_splits_into_clauses_at_sentences_and_conjunctions_only_when_it_has_several() -> None:
    assert clauses("put it in my calendar. Then check the weather in Porto") == [
        "put it in my calendar",
        "check the weather in Porto",
    ]
    assert clauses("find a rain jacket, and also add it to my cart") == ["find a rain jacket", "add it to my cart"]
    assert clauses("what time is it?") == []
    assert clauses("salt and pepper crisps") == []  # a one-word part is not a clause
    many = ". ".join(f"do thing number {n}" for n in range(10))
    assert len(clauses(many)) == MAX_CLAUSES
    assert clauses("find a rain jacket,\n\t and   also add it to my cart") == [
        "find a rain jacket",
        "add it to my cart",
    ]


def test_splitting_a_long_run_of_whitespace_takes_linear_time() -> None:
    # A pattern with two ways to match whitespace took 7.7 s for 1,000 spaces (minutes at the 4,000-character head).
    started = time.perf_counter()
    assert clauses("x" + " " * 4000 + "y") == [] and clauses("a and " * 700) == []
    assert time.perf_counter() - started < 0.5


@pytest.fixture
async def services(db_url: str, settings: Settings) -> AsyncIterator[tuple[CatalogService, CatalogService]]:
    db = Database(db_url, settings)
    await db.open()
    try:
        await CatalogService(db, shared_minilm("int8")).import_servers(parse_import(SERVERS))
        # Both made after the import, so both read the same BM25 statistics (a service keeps them for a while).
        # The stock encoder: the tuned one (v2) already keeps these second intents without clauses, and what is
        # tested here is the mechanism, which is the same for every encoder.
        on = CatalogService(db, shared_minilm("int8"), CatalogSettings(encoder="int8", floor_per_clause=True))
        off = CatalogService(db, shared_minilm("int8"), CatalogSettings(encoder="int8", floor_per_clause=False))
        yield on, off
    finally:
        await db.close()


@pytest.mark.anyio
async def test_the_second_intents_tool_clears_the_floor_through_its_clause(
    services: tuple[CatalogService, CatalogService],
) -> None:
    on, off = services
    for request, second in TWO_INTENTS.items():
        with_clauses = {t["tool"]: t for t in (await on.discover(request, {"tools": 5}, READER))["tools"]}
        without = {t["tool"]: t for t in (await off.discover(request, {"tools": 5}, READER))["tools"]}
        assert second in with_clauses and second not in without, (request, with_clauses, without)
        # The clause only decides what clears the floor: every item kept either way keeps its score.
        for name, hit in without.items():
            assert with_clauses[name]["score"] == hit["score"]
        assert with_clauses[second]["similarity"] >= on.settings.similarity_floor()
    # The same service then asks a one-clause request (its statement has no clause vectors) and a two-clause one.
    assert (await on.discover("convert 100 dollars to euros", {"tools": 5}, READER))["tools"][0]["tool"] == (
        "convert_currency"
    )
    again = await on.discover(next(iter(TWO_INTENTS)), {"tools": 5}, READER)
    assert TWO_INTENTS[next(iter(TWO_INTENTS))] in [t["tool"] for t in again["tools"]]
    # With no floor the clauses change nothing, so only the request is embedded (one new query-cache entry).
    before = (await on.stats())["query_cache"]["entries"]
    hits = (await on.discover("email my boss, and also convert 5 pounds to yen", {"tools": 5}, READER, 0))["tools"]
    assert len(hits) == 5 and (await on.stats())["query_cache"]["entries"] == before + 1


@pytest.mark.anyio
async def test_nonsense_in_several_clauses_still_finds_nothing(
    services: tuple[CatalogService, CatalogService],
) -> None:
    on, _ = services
    assert not (await on.discover("qwzx plimf vorbtang. Then blorp snarfle grak", {"tools": 5}, READER))["tools"]


@pytest.mark.anyio
async def test_an_encoder_without_token_states_embeds_each_clause_alone(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    async with catalog(db_url, settings, embedder) as service:  # embed_batch only: no embed_spans
        await service.import_servers(parse_import(SERVERS))
        request = next(iter(TWO_INTENTS))
        embedder.texts.clear()
        hits = (await service.discover(request, {"tools": 5}, READER))["tools"]
        assert TWO_INTENTS[request] in [t["tool"] for t in hits]
        assert embedder.texts == [request, *clauses(request)]  # one text per run: int8 is quantised per batch


class SpanCounting:
    """The tuned encoder, counting its runs by kind."""

    def __init__(self) -> None:
        self.inner = shared_minilm("tuned")
        self.model_name, self.dimensions = self.inner.model_name, self.inner.dimensions
        self.calls: list[str] = []

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append("batch")
        return self.inner.embed_batch(texts)

    def embed_spans(self, text: str, spans: Sequence[tuple[int, int]]) -> tuple[Any, Any]:
        self.calls.append("spans")
        return self.inner.embed_spans(text, spans)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_batch(texts).tolist()  # type: ignore[no-any-return]


@pytest.mark.anyio
async def test_a_requests_clauses_cost_one_run_of_the_encoder_and_none_when_cached(
    db_url: str, settings: Settings
) -> None:
    encoder = SpanCounting()
    async with catalog(db_url, settings, encoder) as service:
        await service.import_servers(parse_import(SERVERS))
        request = next(iter(TWO_INTENTS))
        encoder.calls.clear()
        first = (await service.discover(request, {"tools": 5}, READER))["tools"]
        assert encoder.calls == ["spans"] and TWO_INTENTS[request] in [t["tool"] for t in first]
        again = (await service.discover("  " + request.replace(" ", "  "), {"tools": 5}, READER))["tools"]
        assert encoder.calls == ["spans"] and again == first  # the same request in other whitespace: cached
