"""The relevance floor of /discover: chosen on the dev splits, then measured on the test splits against no floor.

    .venv/bin/python tests/bench/bench_floor.py [--queries 300] [--examples 20] [--encoder tuned] [--floors 0,0.2,...]

Everything goes through what a user has (`isa keys create`, `isa catalog import`, an `isa serve --role mcp`
subprocess, HTTP). The floor compares the cosine of the request to the item's text, or to the item's nearest
example query (which must clear the floor + catalog.example_margin).

1. Off-topic set (below): gibberish and content-free chat. Against the node's own catalog only (a fresh node),
   then against the full catalog at the end.
2. Per dataset, without and then with train-split examples: the dev queries are asked with each candidate floor
   (`min_similarity` in the request; the node's high-risk and example margins apply on top). The floor kept is
   the highest one costing at most `--budget` Recall@10 on dev in every condition.
3. The test queries are then asked live twice: with the server's configured floor and with `min_similarity: 0`
   (`--no-test` skips this: choosing a floor reads dev only).

`--encoder` sets `catalog.encoder` for the node and the importing CLI (each encoder needs its own floor: the
cosines of a fine-tuned model sit higher). A second off-topic set (`OFF_TOPIC_CHECK`) is never used to choose:
it shows whether a floor chosen against the first one generalises to other nonsense.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import discovery_data as data
from bench_discovery import Client, isa, with_examples

from tests.support.procs import isa_serve

OFF_TOPIC = [
    "qwzx plimf vorbtang",
    "asdfgh jkl",
    "zzzz",
    "blorp fnord quux",
    "xkcd 8472 vvv",
    "lorem ipsum dolor sit amet",
    "ooga booga",
    "mnbvcxz poiuy",
    "fjdksla fjdksla",
    "qqqq wwww eeee",
    "grmbl snarf",
    "tktktk brrr",
    "ok",
    "thanks!",
    "hmm",
    "yes please",
    "no",
    "lol",
    "cool cool",
    "good night",
    "never mind",
    "sure, why not",
    "I see",
    "that's all for now",
    "you're welcome",
    "haha nice",
    "whatever",
    "uh huh",
    "oops",
    "meh",
]
# Reported only, never used to choose a floor.
OFF_TOPIC_CHECK = [
    "vlemp dorq snizzle",
    "hjkl hjkl hjkl",
    "aaaaaa",
    "wibble wobble",
    "foo bar baz",
    "zxcvbn qwerty",
    "plonk 42 zarg",
    "nnnn mmmm",
    "kthxbye",
    "brb",
    "okay then",
    "great, thank you",
    "hello there",
    "hi",
    "alright",
    "got it",
    "nope",
    "sounds good",
    "see you later",
    "not sure",
    "hmm interesting",
    "wow",
    "fine",
    "maybe",
    "right",
    "cheers",
    "sorry",
    "well well well",
    "huh?",
    "bye",
]
FLOORS = [0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4]


def hits(client: Client, text: str, k: int = 10, floor: float | None = 0.0) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"request": text, "max_results": {"tools": k, "prompts": 0, "resources": 0}}
    if floor is not None:
        body["min_similarity"] = floor
    return client.post("/discover", body)["capabilities"]["tools"]  # type: ignore[no-any-return]


def recall(found: list[dict[str, Any]], relevant: frozenset[str], k: int) -> float:
    return len(relevant & {f"{h['server']}/{h['tool']}" for h in found[:k]}) / len(relevant)


def many(client: Client, texts: list[str], floor: float | None) -> list[list[dict[str, Any]]]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda t: hits(client, t, floor=floor), texts))


def off_topic(client: Client, texts: list[str]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for floor in FLOORS:
        offered = [len(f) for f in many(client, texts, floor)]
        out[floor] = {"queries_offered_any": sum(1 for n in offered if n), "tools_per_query": statistics.fmean(offered)}
    return out


def dev_curve(client: Client, queries: list[data.Query]) -> dict[float, dict[str, float]]:
    curve = {}
    for floor in FLOORS:
        found = many(client, [q.text for q in queries], floor)
        rows = list(zip(found, (q.relevant for q in queries), strict=True))
        curve[floor] = {
            "R@1": round(statistics.fmean(recall(f, r, 1) for f, r in rows), 4),
            "R@5": round(statistics.fmean(recall(f, r, 5) for f, r in rows), 4),
            "R@10": round(statistics.fmean(recall(f, r, 10) for f, r in rows), 4),
        }
    return curve


def test_live(client: Client, queries: list[data.Query]) -> dict[str, dict[str, float]]:
    out = {}
    for label, floor in (("no floor", 0.0), ("configured floor", None)):
        found = many(client, [q.text for q in queries], floor)
        out[label] = {
            "R@5": round(statistics.fmean(recall(f, q.relevant, 5) for f, q in zip(found, queries, strict=True)), 4),
            "R@10": round(statistics.fmean(recall(f, q.relevant, 10) for f, q in zip(found, queries, strict=True)), 4),
            "empty": sum(1 for f in found if not f),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=300, help="dev and test queries sampled per dataset")
    parser.add_argument("--examples", type=int, default=20, help="train queries kept per tool as examples")
    parser.add_argument("--floor", type=float, default=None, help="catalog.min_similarity of the node (default: its)")
    parser.add_argument("--margin", type=float, default=0.1, help="catalog.high_risk_margin of the node")
    parser.add_argument("--budget", type=float, default=0.05, help="dev Recall@10 a floor may cost (offline bound)")
    parser.add_argument("--encoder", default="", help="catalog.encoder of the node and the CLI (default: its)")
    parser.add_argument("--floors", default="", help=f"comma-separated floors to try (default: {FLOORS})")
    parser.add_argument("--no-test", action="store_true", help="dev only (choosing a floor)")
    parser.add_argument("--datasets", default="metatool,toollens,mcp")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.floors:
        FLOORS[:] = sorted({0.0, *(float(f) for f in args.floors.split(","))})
    if args.encoder:
        os.environ["ISA_CATALOG__ENCODER"] = args.encoder  # the importing CLI embeds with it too
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="isa-floor-") as tmp:
        data_dir = Path(tmp)
        made = isa(data_dir, "keys", "create", "--user", "bench", "--scope", "admin", "--json", migrate=True)
        key = json.loads(made)["key"]
        env = {"ISA_AUTH__RATE_LIMIT__PRINCIPAL_LIMIT": "0", "ISA_CATALOG__HIGH_RISK_MARGIN": str(args.margin)}
        if args.floor is not None:
            env["ISA_CATALOG__MIN_SIMILARITY"] = str(args.floor)
        with isa_serve("mcp", data_dir, env=env) as proc:
            try:
                proc.wait_ready(300)
                client = Client(proc.url, key)
                for label, texts in (("", OFF_TOPIC), (" check", OFF_TOPIC_CHECK)):
                    results[f"off-topic{label}/own catalog"] = off_topic(client, texts)
                    print(f"[off-topic{label}, own catalog]", results[f"off-topic{label}/own catalog"], flush=True)
                rng = random.Random(11)
                loaders = {"metatool": data.metatool, "toollens": data.toollens, "mcp": data.mcp_servers}
                for ds in (loaders[name]() for name in args.datasets.split(",")):
                    dev = rng.sample(ds.dev, min(args.queries, len(ds.dev)))
                    test = rng.sample(ds.test, min(args.queries, len(ds.test)))
                    path = data_dir / f"{ds.name}.json"
                    for label, servers in (("no examples", ds.servers), ("examples", with_examples(ds, args.examples))):
                        path.write_text(json.dumps(servers))
                        isa(data_dir, "catalog", "import", str(path), "--json")
                        key_ = f"{ds.name}/{label}"
                        results[f"dev/{key_}"] = dev_curve(client, dev)
                        print(f"[dev {key_}]", results[f"dev/{key_}"], flush=True)
                        if not args.no_test:
                            results[f"test/{key_}"] = test_live(client, test)
                            print(f"[test {key_}]", results[f"test/{key_}"], flush=True)
                for label, texts in (("", OFF_TOPIC), (" check", OFF_TOPIC_CHECK)):
                    results[f"off-topic{label}/full catalog"] = off_topic(client, texts)
                    print(f"[off-topic{label}, full catalog]", results[f"off-topic{label}/full catalog"], flush=True)
            finally:
                proc.stop()
    results["seconds"] = round(time.perf_counter() - started)
    report(results, args.budget)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))


def report(results: dict[str, Any], budget: float) -> None:
    dev = {k: v for k, v in results.items() if k.startswith("dev/")}
    print(f"\nDev Recall@1 / Recall@10 by floor, and off-topic queries offered any tool (of {len(OFF_TOPIC)}):")
    sets = [f"off-topic{c}/{n} catalog" for c in ("", " check") for n in ("own", "full")]
    print(f"  {'floor':>6}" + "".join(f"{k[4:]:>26}" for k in dev) + "  off-topic own/full, check own/full")
    for floor in FLOORS:
        print(
            f"  {floor:>6}"
            + "".join(f"{v[floor]['R@1']:>17.4f} {v[floor]['R@10']:.4f}" for v in dev.values())
            + "".join(f"{results[s][floor]['queries_offered_any']:>6}" for s in sets)
        )
    best = max(f for f in FLOORS if all(v[0.0]["R@10"] - v[f]["R@10"] <= budget for v in dev.values()))
    print(f"\nhighest floor costing at most {budget} dev Recall@10 anywhere: {best}")
    print("\nTest split, live (same run): the node's configured floor against min_similarity 0")
    for key, rows in results.items():
        if key.startswith("test/"):
            for label, r in rows.items():
                print(f"  {key[5:]:<26} {label:<18} R@5 {r['R@5']:.4f}  R@10 {r['R@10']:.4f}  empty {r['empty']}")
    print(f"\ntotal {results['seconds']} s")


if __name__ == "__main__":
    main()
