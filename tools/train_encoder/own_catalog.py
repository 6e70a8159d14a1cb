"""isa's own tools as a catalog no encoder was trained on: does a candidate still find them, above nonsense?

    .venv/bin/python tools/train_encoder/own_catalog.py --candidate v2=/tmp/enc/v2.onnx --floor v2=0.26

MetaTool and ToolLens test queries are unseen, but their catalogs are the ones the encoder was trained on; the
held-out check imports catalogs nobody trained on. isa's own tools (declared in isa/, embedded with the catalog's
`embed_text`) are such a catalog. The requests below were written once, before any candidate was measured, as a
user would type them (the first eight are those of the discovery tests that a fine-tune once failed).

Per encoder, dense cosine only (the part of the ranking an encoder changes), no examples:
- Hit@1 and R@3 of the expected tool among the own tools (prompts and resources left out);
- the expected tool's median cosine, and how many clear the encoder's floor (`--floor NAME=VALUE`, else 0.24);
- separation: the share of requests whose expected tool's cosine is above the best cosine of every off-topic
  request (bench_floor's OFF_TOPIC) but one in ten, i.e. a floor exists that keeps it and lets 90 % of nonsense out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "bench"), str(ROOT)]

from bench_floor import OFF_TOPIC  # noqa: E402

from isa.catalog.text import embed_text  # noqa: E402
from isa.core.embeddings import LocalMiniLM  # noqa: E402
from isa.mcp import domains_for  # noqa: E402
from isa.mcp.discovery import catalog_items  # noqa: E402
from isa.mcp.registry import Registry  # noqa: E402

REQUESTS: list[tuple[str, str]] = [
    ("what time is it?", "get_current_time"),
    ("what time is it in Tokyo", "get_current_time"),
    ("what time is it? and show me the server metrics and the audit log", "get_current_time"),
    ("find a rain jacket under 100 and add the cheapest to the cart", "add_to_cart"),
    ("find a rain jacket under 100 and add the cheapest to the cart", "search_products"),
    ("pretty print json", "format_json"),
    ("forget everything you remember about me", "delete_my_memories"),
    ("show me the server metrics", "admin_get_metrics"),
    ("search the web for the latest news on fusion energy", "web_search"),
    ("take a screenshot of example.com", "web_screenshot"),
    ("crawl this site and collect its pages", "web_crawl"),
    ("what is in this picture?", "describe_image"),
    ("read the text in this scanned receipt", "extract_text_from_image"),
    ("are these two photos of the same place?", "compare_two_images"),
    ("transcribe this voice memo", "transcribe_audio"),
    ("draw a picture of a cat riding a bicycle", "generate_image"),
    ("remember that my favourite colour is green", "store_factual_memory"),
    ("what do you remember about my travel plans?", "search_memories"),
    ("where is my order?", "get_order_status"),
    ("remove the socks from my basket", "remove_from_cart"),
    ("what's in my shopping cart", "view_cart"),
    ("pay for my cart", "create_checkout"),
    ("tell me more about this product", "get_product_details"),
    ("save this document to my knowledge base", "store_knowledge"),
    ("answer my question using my uploaded documents", "generate_rag_response"),
    ("turn this PDF into a knowledge graph", "process_pdf_to_knowledge_graph"),
    ("which facts do you know about Marie Curie?", "search_facts_by_subject"),
    ("load this CSV file so I can query it", "ingest_data_source"),
    ("how many orders per month did we have last year? query my sales data", "query_with_language"),
    ("run this job in the background every hour", "create_background_task"),
    ("list my background jobs", "list_background_tasks"),
    ("pause that background task", "control_background_task"),
    ("is this message safe to send, does it contain personal data?", "check_guardrails"),
    ("ask the user to confirm before going on", "ask_human"),
    ("make a step by step plan for this task", "create_execution_plan"),
    ("watch this web page and tell me when it changes", "create_web_monitor_config"),
    ("find objects in this photo", "identify_objects_in_image"),
    ("show me the recent events", "get_recent_events"),
    ("who approved what? list pending approvals", "admin_list_approvals"),
    ("store my GitHub token for that server", "set_upstream_credential"),
]


def one_by_one(enc: LocalMiniLM, texts: list[str]) -> np.ndarray:
    """Each request alone, as /discover embeds it (int8 activations are quantised per batch)."""
    return np.vstack([enc.embed_batch([t]) for t in texts])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidate", action="append", default=[], help="NAME=GRAPH.onnx")
    parser.add_argument("--floor", action="append", default=[], help="NAME=cosine (default 0.24)")
    args = parser.parse_args()
    floors = {k: float(v) for k, v in (f.split("=", 1) for f in args.floor)}
    encs = [("stock int8", LocalMiniLM(precision="int8")), ("v1 (shipped)", LocalMiniLM(precision="tuned"))]
    for spec in args.candidate:
        name, graph = spec.split("=", 1)
        encs.append((name, LocalMiniLM(graph_file=Path(graph), model_name=name)))
    items = [i for i in catalog_items(Registry.discover(domains_for("all"))) if i.item_type == "tool"]
    names = [i.name for i in items]
    missing = {t for _, t in REQUESTS} - set(names)
    if missing:
        raise SystemExit(f"not own tools: {sorted(missing)}")
    want = np.array([names.index(t) for _, t in REQUESTS])
    texts = [r for r, _ in REQUESTS]
    print(f"{len(REQUESTS)} requests over {len(items)} own tools; {len(OFF_TOPIC)} off-topic requests")
    print("| encoder | Hit@1 | R@3 | median cosine | clears floor | off-topic p90 best | separated |")
    print("|---|---|---|---|---|---|---|")
    rows: dict[str, np.ndarray] = {}
    for name, enc in encs:
        tools = enc.embed_batch([embed_text(i) for i in items])
        cos = one_by_one(enc, texts) @ tools.T
        own = cos[np.arange(len(texts)), want]
        rank = (cos > own[:, None]).sum(1)
        off = (one_by_one(enc, OFF_TOPIC) @ tools.T).max(1)
        p90 = float(np.quantile(off, 0.9))
        floor = floors.get(name, 0.24)
        rows[name] = own
        print(
            f"| {name} | {(rank == 0).mean():.3f} | {(rank < 3).mean():.3f} | {np.median(own):.3f} | "
            f"{(own >= floor).mean():.3f} (at {floor}) | {p90:.3f} | {(own > p90).mean():.3f} |"
        )
    print("\nper request: the expected tool's cosine, by encoder (" + ", ".join(rows) + ")")
    for n, (text, tool) in enumerate(REQUESTS):
        print(f"  {text[:60]:<60} {tool:<28} " + "  ".join(f"{rows[k][n]:.3f}" for k in rows))


if __name__ == "__main__":
    main()
