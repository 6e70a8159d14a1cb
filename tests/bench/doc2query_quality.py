"""doc2query and the LLM rerank of discovery, measured with a real model on an OpenAI-wire server (issue 24 item 3).

    tools/local_llm/setup.sh /tmp/isa-local-llm     # or any OpenAI-wire server / provider URL ending in /v1
    .venv/bin/python tests/bench/doc2query_quality.py --provider http://127.0.0.1:8091/v1 --model NAME \
        --generated /tmp/d2q.json --split dev --max-queries 500 [--weights 1,2,4,8] [--rerank-queries 100]

1. Generate (cached in `--generated`; a rerun asks only for tools not there yet, `--no-generate` none). Each tool
   of MetaTool's and ToolLens's catalogs is asked for exactly as an import asks the model node: isa's prompt
   (`isa.catalog.doc2query.prompt`, `--batch` tools per call, temperature 0.7, `max_tokens` as isa sends it) and
   isa's parser (a batch whose answer is not the JSON asked for yields nothing). `--json-mode` also sends
   `response_format: {"type": "json_object"}`; `--style fewshot` asks a base model (no chat template) by few-shot
   completion instead, one request per call.
2. Rank the split's queries zero-shot the way the ranking statement does (the tuned encoder, z-score fusion
   0.7 / 0.3 over the 40 + 40 candidates, `zero_shot_discovery.py`), without examples (today's zero-shot) and with
   the generated requests as example votes (the 40 nearest, cos^3, at each of `--weights`; isa's is 8). The
   example floor of the SQL is not applied here.
3. With `--rerank-queries N`: the first N single-intent queries' hybrid top 20 in the order isa's listwise
   rerank prompt returns (temperature 0; a failed answer keeps the hybrid order, as in isa).

Paired 95 % bootstrap intervals for each difference, on the same queries. Choices are made on dev; the test split
is read once, for a report, and only for something adopted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import discovery_data as data
import zero_shot_discovery as zs
from zero_shot_discovery import diff_ci

from isa.catalog.doc2query import answer_tokens, parse_answer, prompt, tool_text
from isa.catalog.text import embed_text, extra_text, name_text
from isa.core.embedded import embedded_url
from isa.core.embeddings import LocalMiniLM
from isa.llm.rerank import answer_tokens as ranking_tokens
from isa.llm.rerank import parse_ranking
from isa.llm.rerank import prompt as rerank_prompt

VOTES_WEIGHT = 8.0  # Weights.examples_weight next to z-score fusion (docs/discovery.md)
# --style fewshot: a base (not instruction-tuned) model continues a pattern instead of following instructions.
# The four examples are made up for tools that are in neither dataset, so no split leaks into the prompt.
FEW_SHOT = """Tool: get_current_time - Get the current time in a given timezone.
Request: what time is it in Tokyo right now?

Tool: send_email - Send an email message to a recipient with a subject and body.
Request: email my landlord that the heating is broken

Tool: convert_currency - Convert an amount of money from one currency to another.
Request: how much is 250 euros in dollars?

Tool: search_flights - Find flights between two airports on a date.
Request: find me a cheap flight from Boston to Denver next Friday

"""


def generate(args: argparse.Namespace, cat: zs.Catalog, cache: dict[str, list[str]]) -> dict[str, float]:
    """Fill `cache` (tool key -> requests) for the catalog's tools not in it; returns the run's counts."""
    keys = [f"{i.server}/{i.name}" for i in cat.items]
    texts = {k: tool_text(i.name, i.description, extra_text(i)) for k, i in zip(keys, cat.items, strict=True)}
    todo = [] if args.no_generate else [k for k in keys if k not in cache]
    batches = [todo[i : i + args.batch] for i in range(0, len(todo), args.batch)]
    stats = {"asked": len(todo), "calls": len(batches), "failed_calls": 0, "completion_tokens": 0}
    started = time.perf_counter()

    def one_fewshot(key: str) -> None:
        item = cat.items[keys.index(key)]
        line = f"{item.name} - {' '.join(item.description.split())[:300]}"
        found: list[str] = []
        for seed in range(args.per_tool):
            body = {"prompt": f"{FEW_SHOT}Tool: {line}\nRequest:", "max_tokens": 40, "temperature": 0.8,
                    "stop": ["\n"], "seed": seed}  # fmt: skip
            try:
                r = httpx.post(f"{args.provider}/completions", json=body, timeout=args.timeout)
                r.raise_for_status()
                answer = r.json()
                stats["completion_tokens"] += answer.get("usage", {}).get("completion_tokens", 0)
                text = " ".join(answer["choices"][0]["text"].split())
            except (httpx.HTTPError, ValueError, KeyError):
                stats["failed_calls"] += 1
                continue
            if text and "Tool:" not in text and text not in found:
                found.append(text)
        cache[key] = found

    def one(batch: list[str]) -> None:
        body: dict[str, Any] = {
            "model": args.model,
            "messages": prompt([texts[k] for k in batch], args.per_tool),
            "temperature": 0.7,
            "max_tokens": answer_tokens(len(batch), args.per_tool),
        }
        if args.json_mode:
            body["response_format"] = {"type": "json_object"}
        try:
            r = httpx.post(f"{args.provider}/chat/completions", json=body, timeout=args.timeout)
            r.raise_for_status()
            answer = r.json()
            found = parse_answer(answer["choices"][0]["message"]["content"] or "", len(batch), args.per_tool)
            stats["completion_tokens"] += answer.get("usage", {}).get("completion_tokens", 0)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            stats["failed_calls"] += 1
            print(f"    batch failed: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
            found = {}
        for i, k in enumerate(batch):
            cache[k] = found.get(i, [])  # [] is remembered too: that tool was asked and got nothing

    work: list[Any] = list(todo) if args.style == "fewshot" else batches  # a tool per task, or a batch
    if args.style == "fewshot":
        stats["calls"] = len(todo) * args.per_tool
    with ThreadPoolExecutor(args.concurrency) as pool:
        for n, _ in enumerate(pool.map(one_fewshot if args.style == "fewshot" else one, work), 1):
            if n % 10 == 0:
                print(f"    {n}/{len(work)} tasks, {time.perf_counter() - started:.0f} s", flush=True)
    stats["seconds"] = round(time.perf_counter() - started)
    return stats


def reranked(args: argparse.Namespace, cat: zs.Catalog, query: str, top: list[int]) -> tuple[list[int], bool, float]:
    """`top` (tool indexes) in the model's order, as CatalogService._rerank asks it (isa's listwise prompt over
    "name: description", temperature 0); a failure keeps the hybrid order. Also: did it succeed, seconds."""
    hits = [{"name": cat.items[t].name, "description": cat.items[t].description} for t in top]
    body = {"model": args.model, "messages": rerank_prompt(query, hits, lambda h: f"{h['name']}: {h['description']}"),
            "temperature": 0, "max_tokens": ranking_tokens(len(hits))}  # fmt: skip
    started = time.perf_counter()
    try:
        r = httpx.post(f"{args.provider}/chat/completions", json=body, timeout=args.timeout)
        r.raise_for_status()
        order = parse_ranking(r.json()["choices"][0]["message"]["content"] or "", len(top))
    except (httpx.HTTPError, ValueError, KeyError):
        return top, False, time.perf_counter() - started
    return [top[i] for i in order], True, time.perf_counter() - started


def rerank_rows(
    args: argparse.Namespace, cat: zs.Catalog, qtexts: list[str], rel: list[list[int]], scores: Any
) -> None:
    """The first `--rerank-queries` queries: hybrid top `--rerank-candidates`, then the model's order."""
    n, k = min(args.rerank_queries, len(qtexts)), args.rerank_candidates
    tops = np.argsort(-scores[:n], axis=1)[:, :k].tolist()
    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(lambda i: reranked(args, cat, qtexts[i], tops[i]), range(n)))
    base_s = np.full((n, scores.shape[1]), -1e9, np.float32)
    new_s = base_s.copy()
    for i, (order, _, _) in enumerate(results):
        base_s[i, tops[i]] = -np.arange(k)
        new_s[i, order] = -np.arange(k)
    base, new = zs.per_query(base_s, rel[:n]), zs.per_query(new_s, rel[:n])
    ok = sum(r[1] for r in results)
    same = sum(r[1] and r[0] == tops[i] for i, r in enumerate(results))
    secs = sorted(r[2] for r in results)
    print(
        f"    rerank of the top {k}, {n} queries: {ok} answered with a usable ranking ({same} of them the hybrid"
        f" order itself), p50 {secs[n // 2]:.1f} s"
    )
    for label, m in (("hybrid order", base), ("model's order", new)):
        delta = (
            "" if m is base else f"   Δ R@1 {diff_ci(m['R@1'], base['R@1'])}  Δ R@5 {diff_ci(m['R@5'], base['R@5'])}"
        )
        print(
            f"    {label:<26} R@1 {zs.ci(m['R@1'])}  R@5 {zs.ci(m['R@5'])}  R@10 {zs.ci(m['R@10'])}{delta}", flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--provider", required=True, help="an OpenAI-wire base URL ending in /v1")
    parser.add_argument("--model", default="default")
    parser.add_argument("--generated", type=Path, required=True, help="JSON cache of the generated requests")
    parser.add_argument("--split", choices=["dev", "test"], default="dev")
    parser.add_argument("--max-queries", type=int, default=500)
    parser.add_argument("--per-tool", type=int, default=5, help="doc2query_per_tool")
    parser.add_argument("--batch", type=int, default=8, help="doc2query_batch")
    parser.add_argument("--concurrency", type=int, default=2, help="doc2query_concurrency")
    parser.add_argument("--timeout", type=float, default=60.0, help="per call (doc2query_timeout_seconds)")
    parser.add_argument("--json-mode", action="store_true", help='send response_format {"type": "json_object"}')
    parser.add_argument(
        "--style", default="chat", choices=["chat", "fewshot"], help="isa's chat prompt, or few-shot completion"
    )
    parser.add_argument("--datasets", default="metatool,toollens")
    parser.add_argument(
        "--weights",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[VOTES_WEIGHT],
        help="the votes' weights to read (8: isa's; others only to see the sensitivity, on dev)",
    )
    parser.add_argument("--rerank-queries", type=int, default=0, help="also rerank this many queries per set")
    parser.add_argument("--rerank-candidates", type=int, default=20, help="rerank_candidates")
    parser.add_argument("--no-generate", action="store_true", help="use only what --generated already holds")
    parser.add_argument("--encoder", default="tuned", choices=["tuned", "int8", "fp32"])
    args = parser.parse_args()
    store: dict[str, dict[str, list[str]]] = json.loads(args.generated.read_text()) if args.generated.exists() else {}
    enc = LocalMiniLM(precision=args.encoder)
    conn = psycopg.connect(embedded_url(Path(tempfile.mkdtemp(prefix="isa-d2q-"))), autocommit=True)
    loaders = {"metatool": data.metatool, "toollens": data.toollens}
    for name in args.datasets.split(","):
        cat = zs.load_sampled(loaders[name](), args.split, args.max_queries)
        cache = store.setdefault(cat.name, {})
        stats = generate(args, cat, cache)
        args.generated.write_text(json.dumps(store, indent=1))
        got = [len(cache.get(f"{i.server}/{i.name}", [])) for i in cat.items]
        print(
            f"\n## {cat.name}: {len(cat.items)} tools; this run asked {stats['asked']} in {stats['calls']} calls"
            f" ({stats['failed_calls']} failed, {stats['completion_tokens']} completion tokens, {stats['seconds']} s);"
            f" tools with requests {sum(g > 0 for g in got)}, requests per tool {np.mean(got):.2f}",
            flush=True,
        )
        tool_vecs = enc.embed_batch([embed_text(i) for i in cat.items])
        docs = zs.lexemes(conn, [[name_text(i), i.description, extra_text(i)] for i in cat.items], "english")
        ex_texts, owners = [], []
        for n, i in enumerate(cat.items):
            for q in cache.get(f"{i.server}/{i.name}", []):
                ex_texts.append(q)
                owners.append(n)
        ex_vecs = enc.embed_batch(ex_texts) if ex_texts else None
        for set_name, (qtexts, rel) in cat.sets.items():
            qv = enc.embed_batch(qtexts)
            dense, lex = qv @ tool_vecs.T, zs.bm25(docs, zs.lexemes(conn, [[t] for t in qtexts], "english"))
            fused = zs.rank_scores("z", dense, lex)
            base = zs.per_query(fused, rel)
            print(f"  {set_name} ({len(qtexts)} queries, encoder {args.encoder})", flush=True)
            rows = [("zero-shot: z 0.7/0.3", base)]
            if ex_vecs is not None:
                votes = zs.votes_matrix(qv, ex_vecs, np.array(owners), len(cat.items))
                for wx in args.weights:
                    scores = zs.rank_scores("z", dense, lex, votes=votes, wx=wx)
                    rows.append((f"+ doc2query votes (w {wx:g})", zs.per_query(scores, rel)))
            for label, m in rows:
                delta = (
                    ""
                    if m is base
                    else f"   Δ R@1 {diff_ci(m['R@1'], base['R@1'])}  Δ R@10 " + diff_ci(m["R@10"], base["R@10"])
                )
                print(
                    f"    {label:<26} R@1 {zs.ci(m['R@1'])}  R@10 {zs.ci(m['R@10'])}  nDCG@10 {zs.ci(m['nDCG@10'])}"
                    f"  all@10 {zs.ci(m['all@10'])}{delta}",
                    flush=True,
                )
            if args.rerank_queries and set_name == args.split:  # single-intent requests only
                rerank_rows(args, cat, qtexts, rel, fused)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"\n{time.perf_counter() - t0:.0f} s")
