"""Tool discovery quality and latency over real HTTP: BM25 alone, dense alone, plain fusion and ours, one run.

    .venv/bin/python tests/bench/bench_discovery.py [--queries 1000] [--scale 1000,5000,10000]

Everything goes through what a user has: `isa keys create`, `isa catalog import FILE` (MetaTool and ToolLens
converted to the import format, see discovery_data.py), an `isa serve --role mcp` subprocess on an isolated
ISA_DATA_DIR, and HTTP calls. Per dataset:

1. import the tools without examples, query the test split with /search mode=lexical (BM25 alone),
   mode=dense (MiniLM cosine alone) and /discover (plain fusion: nothing learned yet);
2. re-import the same file with each tool's train-split queries as `examples` (only the examples are embedded:
   the tools' content hashes did not change), query /discover again (ours);
3. with `--provider`, doc2query (below).

Test queries never appear as examples; the weights were chosen on the dev split (train_discovery.py).
Then the catalog is replaced by synthetic tools and /discover latency is measured at each scale.

doc2query (`--provider URL --provider-model ALIAS`): after step 2 the file without examples is imported once
more with `catalog.doc2query_model = ALIAS` and `services.model_url = URL` (an isa model node, or any OpenAI-wire
server: the calls are `POST {URL}/v1/chat/completions` with an isa token, so the node must share
ISA_AUTH__TOKEN_SECRET), and /discover is asked again: "fusion + doc2query" is zero-shot ranking helped only by
the model's generated requests. `--provider fake` starts the tests' scripted OpenAI-wire fake on loopback: it
answers prose, not JSON, so nothing is generated and the row equals plain fusion — it checks the plumbing only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import discovery_data as data

from tests.support.procs import isa_serve


def isa(
    data_dir: Path, *args: str, migrate: bool = False, extra_env: dict[str, str] | None = None, tree: str = ""
) -> str:
    """`isa ARGS` on `data_dir`; `tree`: run that source tree's isa (the code before a change) instead of ours."""
    # Only the first command migrates: a migration file edited mid-run must not stop the benchmark.
    env = {
        **os.environ,
        **(extra_env or {}),
        **({"PYTHONPATH": tree} if tree else {}),
        "ISA_DATA_DIR": str(data_dir),
        "ISA_ENV": "test",
        "ISA_DATABASE__AUTO_MIGRATE": "true" if migrate else "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "isa", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
        cwd=tree or None,  # `python -m` puts the working directory first on sys.path
    )
    if done.returncode != 0:
        raise RuntimeError(f"isa {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def score(ranked: list[str], relevant: frozenset[str]) -> dict[str, float]:
    out = {f"R@{k}": len(relevant & set(ranked[:k])) / len(relevant) for k in (1, 5, 10)}
    dcg = sum(1 / math.log2(i + 2) for i, key in enumerate(ranked[:10]) if key in relevant)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    out["nDCG@10"] = dcg / idcg
    out["all@10"] = float(relevant <= set(ranked[:10]))
    return out


def mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.fmean(r[k] for r in rows), 4) for k in rows[0]}


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=8))

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(self.url + path, json=body, headers=self.headers)
        if r.status_code != 200:
            raise RuntimeError(f"{path} -> {r.status_code}: {r.text[:500]}")
        out: dict[str, Any] = r.json()
        return out

    def ranked(self, text: str, mode: str) -> list[str]:
        if mode == "ours":
            body = {"request": text, "max_results": {"tools": 10, "prompts": 0, "resources": 0}}
            tools = self.post("/discover", body)["capabilities"]["tools"]
            return [f"{t['server']}/{t['tool']}" for t in tools]
        body = {"query": text, "filters": {"types": ["tool"]}, "max_results": 10, "mode": mode}
        return [f"{r['server']}/{r['item']}" for r in self.post("/search", body)["results"]]


def evaluate(client: Client, queries: list[data.Query], mode: str) -> dict[str, float]:
    with ThreadPoolExecutor(4) as pool:
        ranked = list(pool.map(lambda q: client.ranked(q.text, mode), queries))
    return mean([score(r, q.relevant) for r, q in zip(ranked, queries, strict=True)])


def with_examples(ds: data.Dataset, cap: int) -> list[dict[str, Any]]:
    """The same import file, each tool carrying (at most `cap` of) the train-split queries it answers."""
    examples: dict[str, list[str]] = {}
    for q in ds.train:
        for key in q.relevant:
            if len(examples.setdefault(key, [])) < cap:
                examples[key].append(q.text)
    servers = json.loads(json.dumps(ds.servers))
    for server in servers:
        for tool in server["tools"]:
            tool["examples"] = examples.get(f"{server['name']}/{tool['name']}", [])
    return servers


def quality(
    client: Client,
    data_dir: Path,
    ds: data.Dataset,
    n: int,
    cap: int,
    results: dict[str, Any],
    doc2query: dict[str, str] | None = None,
) -> None:
    rng = random.Random(7)
    sets = {"test": rng.sample(ds.test, min(n, len(ds.test))), **ds.extra_test}
    path = data_dir / f"{ds.name}.json"
    data.write_import_file(ds, path)
    t = time.perf_counter()
    isa(data_dir, "catalog", "import", str(path), "--json")
    print(
        f"[{ds.name}] imported {sum(len(s['tools']) for s in ds.servers)} tools in {time.perf_counter() - t:.0f}s",
        flush=True,
    )
    for name, queries in sets.items():
        for mode, label in (("lexical", "BM25 alone"), ("dense", "dense alone"), ("ours", "fusion, no examples")):
            results[f"{ds.name}/{name}"][label] = evaluate(client, queries, mode)
            print(f"[{ds.name}/{name}] {label}: {results[f'{ds.name}/{name}'][label]}", flush=True)
    path.write_text(json.dumps(with_examples(ds, cap)))
    t = time.perf_counter()
    out = json.loads(isa(data_dir, "catalog", "import", str(path), "--json"))
    print(
        f"[{ds.name}] re-imported with {sum(r['examples'] for r in out)} train examples in"
        f" {time.perf_counter() - t:.0f}s; tools re-embedded: {sum(r['embedded'] for r in out)}"
    )
    for name, queries in sets.items():
        results[f"{ds.name}/{name}"]["ours"] = evaluate(client, queries, "ours")
        results[f"{ds.name}/{name}"]["queries"] = len(queries)
        print(f"[{ds.name}/{name}] ours: {results[f'{ds.name}/{name}']['ours']}", flush=True)
    if doc2query is not None:
        # Last, so "ours" never sees generated requests: the file without examples clears the train ones.
        data.write_import_file(ds, path)
        t = time.perf_counter()
        out = json.loads(isa(data_dir, "catalog", "import", str(path), "--json", extra_env=doc2query))
        made = sum(r.get("generated", 0) for r in out)
        print(f"[{ds.name}] doc2query: {made} requests generated in {time.perf_counter() - t:.0f}s", flush=True)
        for name, queries in sets.items():
            results[f"{ds.name}/{name}"]["fusion + doc2query"] = evaluate(client, queries, "ours")
            results[f"{ds.name}/{name}"]["generated"] = made
            print(f"[{ds.name}/{name}] fusion + doc2query: {results[f'{ds.name}/{name}']['fusion + doc2query']}")
    for server in ds.servers:
        isa(data_dir, "catalog", "remove", server["name"])


_VERBS = [
    "search",
    "create",
    "delete",
    "list",
    "update",
    "fetch",
    "summarise",
    "translate",
    "convert",
    "monitor",
    "schedule",
    "analyse",
    "export",
    "validate",
    "compare",
    "archive",
    "tag",
    "rank",
    "forecast",
    "notify",
]
_OBJECTS = [
    "invoices",
    "emails",
    "calendar events",
    "github issues",
    "pull requests",
    "tweets",
    "weather reports",
    "stock quotes",
    "flight prices",
    "hotel rooms",
    "recipes",
    "songs",
    "podcasts",
    "news articles",
    "spreadsheets",
    "pdf files",
    "images",
    "videos",
    "customer tickets",
    "shipping labels",
    "crypto prices",
    "support chats",
    "job postings",
    "restaurant reviews",
    "sales leads",
]
_PLACES = [
    "in Salesforce",
    "on Slack",
    "in Google Drive",
    "in Notion",
    "on Shopify",
    "in Jira",
    "in a Postgres database",
    "on S3",
    "in Zendesk",
    "in HubSpot",
    "on Discord",
    "in Dropbox",
    "in Trello",
    "on YouTube",
    "in Airtable",
    "on Twitter",
    "in Outlook",
    "in Stripe",
    "in Figma",
    "in Confluence",
]


def synthetic_servers(start: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(start)
    tools = []
    for i in range(start, start + count):
        verb, obj, place = rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_PLACES)
        tools.append(
            {
                "name": f"{verb}_{obj.replace(' ', '_')}_{i}",
                "description": f"{verb.capitalize()} {obj} {place}. Variant {i} with its own options and limits.",
                "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}},
            }
        )
    # An import is capped at 5,000 tools per server: larger steps become several servers.
    return [{"name": f"synthetic{start + i}", "tools": tools[i : i + 5000]} for i in range(0, len(tools), 5000)]


def latency_queries(count: int, warm: bool) -> list[str]:
    rng = random.Random(count)
    queries = [f"{rng.choice(_VERBS)} my {rng.choice(_OBJECTS)} {rng.choice(_PLACES)} #{i}" for i in range(300)]
    return queries[:20] * 15 if warm else queries


def percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"p50_ms": round(times[len(times) // 2], 1), "p95_ms": round(times[int(len(times) * 0.95)], 1)}


def latency(client: Client, count: int, warm: bool) -> dict[str, float]:
    return latency_side_by_side([client], count, warm)[0]


def latency_side_by_side(clients: list[Client], count: int, warm: bool) -> list[dict[str, float]]:
    """/discover timed on each server with the same queries, request by request in alternating order (so both
    see the same moments of a shared machine's load)."""
    queries = latency_queries(count, warm)
    for q in queries[:10]:  # connection set-up and prepared statements
        for client in clients:
            client.post("/discover", {"request": q})
    times: list[list[float]] = [[] for _ in clients]
    for n, q in enumerate(queries):
        for k in range(len(clients)) if n % 2 == 0 else reversed(range(len(clients))):
            t = time.perf_counter()
            clients[k].post("/discover", {"request": q})
            times[k].append((time.perf_counter() - t) * 1000)
    return [percentiles(t) for t in times]


def same_rankings(clients: list[Client], count: int) -> dict[str, float]:
    """Top 10 tools (and the default response's prompts and resources) of two servers for the cold queries:
    the share of identical responses, of responses with identical score lists (names may differ only between
    tools of equal score), and the mean overlap of the top-10 tools."""
    same, same_scores, overlap = 0, 0, 0.0
    queries = latency_queries(count, warm=False)
    for q in queries:
        body = {"request": q, "max_results": {"tools": 10, "prompts": 3, "resources": 3}}
        a, b = (c.post("/discover", body)["capabilities"] for c in clients)
        kinds = ("tools", "prompts", "resources")
        names = [[[h["name"] for h in found[kind]] for kind in kinds] for found in (a, b)]
        scores = [[[h["score"] for h in found[kind]] for kind in kinds] for found in (a, b)]
        same += names[0] == names[1]
        same_scores += scores[0] == scores[1]
        overlap += len(set(names[0][0]) & set(names[1][0])) / max(len(names[0][0]), 1)
    n = len(queries)
    return {"queries": n, "identical": same / n, "same_scores": same_scores / n, "top10_overlap": overlap / n}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=1000, help="test queries sampled per dataset")
    parser.add_argument("--scale", default="1000,5000,10000")
    parser.add_argument("--datasets", default="metatool,toollens", help="empty: latency only")
    parser.add_argument("--max-examples", type=int, default=10_000, help="train queries kept per tool")
    parser.add_argument("--out", default="", help="write the results as JSON here")
    parser.add_argument("--data-dir", default="", help="an ISA_DATA_DIR whose catalog already has the tools: no import")
    parser.add_argument("--provider", default="", help="doc2query through this model node ('fake': the tests' fake)")
    parser.add_argument("--provider-model", default="default", help="the model alias doc2query asks for")
    parser.add_argument("--doc2query-budget", type=float, default=3600.0, help="seconds one import may spend on it")
    parser.add_argument(
        "--before",
        default="",
        help="latency: also serve this source tree (the code before a change) on its own catalog, side by side",
    )
    parser.add_argument(
        "--vacuum", action="store_true", help="VACUUM ANALYZE each catalog after each import step (steady state)"
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="measure each scale first without the access-scope statistics of migration 0038 (the plan before it)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        args.doc2query = doc2query_env(args, stack) if args.provider else None
        bench(args, results)
    results["seconds"] = round(time.perf_counter() - started)
    report(results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


def doc2query_env(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, str]:
    """What `isa catalog import` needs to write doc2query requests through the provider."""
    url, model = args.provider, args.provider_model
    if url == "fake":
        from tests.support.fake_openai import FakeOpenAI

        url, model = stack.enter_context(FakeOpenAI()).url, "fake-doc2query"
    return {
        "ISA_SERVICES__MODEL_URL": url,
        "ISA_CATALOG__DOC2QUERY_MODEL": model,
        "ISA_CATALOG__DOC2QUERY_BUDGET_SECONDS": str(args.doc2query_budget),
        "ISA_AUTH__TOKEN_SECRET": os.environ.get("ISA_AUTH__TOKEN_SECRET") or secrets.token_urlsafe(32),
    }


def bench(args: argparse.Namespace, results: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="isa-bench-") as tmp, contextlib.ExitStack() as stack:
        data_dir = Path(args.data_dir or tmp)
        key = json.loads(isa(data_dir, "keys", "create", "--user", "bench", "--scope", "read", "--json", migrate=True))[
            "key"
        ]
        # The per-principal request budget (isa.auth) would turn this one client's thousands of queries into 429s.
        env = {"ISA_AUTH__RATE_LIMIT__PRINCIPAL_LIMIT": "0"}
        proc = stack.enter_context(isa_serve("mcp", data_dir, env=env))
        before = None
        if args.before:  # the code before, with its own migrations, on its own copy of the catalog
            tree = str(Path(args.before).resolve())
            before_dir = data_dir / "before"
            before_dir.mkdir(exist_ok=True)
            made = isa(before_dir, "keys", "create", "--user", "bench", "--scope", "read", "--json", migrate=True,
                       tree=tree)  # fmt: skip
            served = stack.enter_context(isa_serve("mcp", before_dir, env={**env, "PYTHONPATH": tree}, cwd=tree))
            before = Side(served, json.loads(made)["key"], before_dir, tree)
        try:
            run(Side(proc, key, data_dir, ""), before, args, results)
        finally:
            for side in (before, Side(proc, key, data_dir, "")):
                if side is not None:
                    side.proc.stop()  # SIGTERM: the last process using the embedded Postgres stops it
            leave_embedded()


@dataclass
class Side:
    """One server under test: its process, key, data folder and source tree ("": this checkout)."""

    proc: Any
    key: str
    data_dir: Path
    tree: str


def run(ours: Side, before: Side | None, args: argparse.Namespace, results: dict[str, Any]) -> None:
    proc, key, data_dir = ours.proc, ours.key, ours.data_dir
    proc.wait_ready(180)
    client = Client(proc.url, key)
    loaders = {"metatool": data.metatool, "toollens": data.toollens, "mcp": data.mcp_servers}
    for ds in (loaders[name]() for name in args.datasets.split(",") if name):
        for name in ["test", *ds.extra_test]:
            results[f"{ds.name}/{name}"] = {}
        quality(client, data_dir, ds, args.queries, args.max_examples, results, args.doc2query)
    sides = [ours] if before is None else [ours, before]
    if before is not None:
        before.proc.wait_ready(180)
    have = 0
    for size in [int(s) for s in args.scale.split(",") if s]:
        for side in sides:
            if args.data_dir and not side.tree:
                continue
            path = side.data_dir / f"synthetic{size}.json"
            path.write_text(json.dumps(synthetic_servers(have, size - have)))
            t = time.perf_counter()
            isa(side.data_dir, "catalog", "import", str(path), "--json", tree=side.tree)
            print(
                f"[scale] {size} tools (import of {size - have}: {time.perf_counter() - t:.0f}s){side.tree}", flush=True
            )
        have = size
        if args.vacuum:
            for side in sides:
                vacuum(side.data_dir)
        if args.baseline:
            scope_statistics(data_dir, keep=False)
            results[f"latency/{size} before"] = {
                "cold": latency(client, size, warm=False),
                "warm": latency(client, size, warm=True),
            }
            print(f"[scale] {size} before: {results[f'latency/{size} before']}", flush=True)
            scope_statistics(data_dir, keep=True)
        if before is None:
            results[f"latency/{size}"] = {
                "cold": latency(client, size, warm=False),
                "warm": latency(client, size, warm=True),
            }
        else:
            clients = [client, Client(before.proc.url, before.key)]
            cold, warm = (latency_side_by_side(clients, size, w) for w in (False, True))
            results[f"latency/{size}"] = {"cold": cold[0], "warm": warm[0]}
            results[f"latency/{size} before"] = {"cold": cold[1], "warm": warm[1]}
            # Two catalogs of the same tools differ in row ids, which break exact ties (ORDER BY score, id), so
            # the rankings are also compared on one catalog: the code before served on ours.
            results[f"rankings/{size}"] = same_rankings(clients, size)
            env = {"ISA_AUTH__RATE_LIMIT__PRINCIPAL_LIMIT": "0", "PYTHONPATH": before.tree}
            with isa_serve("mcp", data_dir, env=env, cwd=before.tree) as other:
                other.wait_ready(180)
                pair = [client, Client(other.url, key)]
                results[f"rankings/{size} one catalog"] = same_rankings(pair, size)
                other.stop()
            print(f"[scale] {size} before: {results[f'latency/{size} before']}", flush=True)
            print(f"[scale] {size} rankings: {results[f'rankings/{size}']}", flush=True)
        print(f"[scale] {size}: {results[f'latency/{size}']}", flush=True)


# The data folders whose embedded Postgres this process joined (`connect`): it is one of the server's users until
# `leave_embedded`, and the server stops with its last user — left to exit time, after the temporary folder is gone.
_JOINED: set[Path] = set()


def connect(data_dir: Path) -> Any:
    """An autocommit connection to a side's database (ISA_DATABASE__URL, else its embedded Postgres, joined)."""
    import psycopg

    from isa.core.embedded import embedded_url

    url = os.environ.get("ISA_DATABASE__URL")
    if not url:
        url = embedded_url(data_dir)
        _JOINED.add(data_dir)
    return psycopg.connect(url, autocommit=True)


def leave_embedded() -> None:
    """Leave every embedded Postgres joined; the last user stops it (the servers under test have exited by now)."""
    import pgserver  # type: ignore[import-untyped]

    from isa.core.embedded import data_folder

    while _JOINED:
        pgserver.get_server(data_folder(_JOINED.pop())).cleanup()


def vacuum(data_dir: Path) -> None:
    """VACUUM ANALYZE the discovery tables (what autovacuum does some time after an import): both sides measured in
    the steady state, whichever was imported last."""
    with connect(data_dir) as conn:
        for table in ("mcp_unified_search_embeddings", "mcp_search_postings", "mcp_query_examples"):
            conn.execute(f"VACUUM ANALYZE {table}")


def scope_statistics(data_dir: Path, keep: bool) -> None:
    """Drop (keep=False) or restore migration 0038's statistics on the access-scope expression, then ANALYZE."""
    from isa.catalog.access import REQUIRED_SCOPE

    with connect(data_dir) as conn:
        conn.execute("DROP STATISTICS IF EXISTS mcp_unified_search_scope_stats")
        if keep:
            expr = REQUIRED_SCOPE.as_string(conn).replace("e.", "")
            table = "mcp_unified_search_embeddings"
            conn.execute(f"CREATE STATISTICS mcp_unified_search_scope_stats ON ({expr}) FROM {table}")
        conn.execute("ANALYZE mcp_unified_search_embeddings")


def report(results: dict[str, Any]) -> None:
    cols = ["R@1", "R@5", "R@10", "nDCG@10", "all@10"]
    for key, rows in results.items():
        if not key.startswith(("metatool", "toollens", "mcp")):
            continue
        print(f"\n{key} ({rows.get('queries')} queries)")
        print(f"  {'ranking':<22}" + "".join(f"{c:>9}" for c in cols) + f"{'R@10 x':>9}")
        base = max(rows["BM25 alone"]["R@10"], rows["dense alone"]["R@10"])
        for label in ("BM25 alone", "dense alone", "fusion, no examples", "fusion + doc2query", "ours"):
            if label not in rows:
                continue
            r = rows[label]
            print(f"  {label:<22}" + "".join(f"{r[c]:>9.3f}" for c in cols) + f"{r['R@10'] / base:>9.2f}")
    print("\n/discover latency over HTTP (300 queries, one client; cold = distinct queries, warm = repeated)")
    for key, r in results.items():
        if key.startswith("latency/"):
            c, w = r["cold"], r["warm"]
            print(
                f"  {key[8:]:>6} tools: cold p50 {c['p50_ms']} ms p95 {c['p95_ms']} ms;"
                f" warm p50 {w['p50_ms']} ms p95 {w['p95_ms']} ms"
            )
    for key, r in results.items():
        if key.startswith("rankings/"):
            line = f"  {key[9:]:>6} tools: same response as the code before {r['identical']:.3f} of {r['queries']}"
            print(f"{line} queries, same scores {r['same_scores']:.3f}; top-10 tool overlap {r['top10_overlap']:.4f}")
    print(f"\ntotal {results['seconds']} s")


if __name__ == "__main__":
    main()
