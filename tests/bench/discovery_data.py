"""MetaTool and ToolLens as `isa catalog import` files, plus fixed query splits (shared by the bench and training).

Splits are decided by a hash of the query id (ToolLens) or the query text (MetaTool), so they never depend on file
order or on a random seed, and the training script and the benchmark always agree on them:

- ToolLens (train.tsv only; the other queries have no labels): buckets 0-6 train (the adapter is fitted here),
  bucket 7 dev (weights and hyper-parameters are chosen here), buckets 8-9 test (reported, never looked at before).
- MetaTool single-tool (all_clean_data.csv): same buckets. Multi-tool golden queries: all test.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
if not DATASETS.is_dir():
    DATASETS = Path("/work/shared/datasets")


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    relevant: frozenset[str]  # (server, tool) keys joined as "server/tool"


@dataclass(frozen=True)
class Dataset:
    name: str
    servers: list[dict[str, Any]]  # the import file
    train: list[Query]
    dev: list[Query]
    test: list[Query]
    extra_test: dict[str, list[Query]]


def split_of(key: str) -> str:
    bucket = int(hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest(), 16) % 10
    return "train" if bucket < 7 else "dev" if bucket == 7 else "test"


def _split(queries: list[Query], key_of: Any) -> dict[str, list[Query]]:
    out: dict[str, list[Query]] = {"train": [], "dev": [], "test": []}
    for q in queries:
        out[split_of(key_of(q))].append(q)
    return out


def _query_schema() -> dict[str, Any]:
    """MetaTool plugins have no schema: one free-text argument, as most OpenAI plugins took."""
    return {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}


def metatool() -> Dataset:
    root = DATASETS / "metatool"
    plugins: dict[str, str] = json.loads((root / "plugin_des.json").read_text())
    tools = [{"name": name, "description": desc, "inputSchema": _query_schema()} for name, desc in plugins.items()]
    servers = [{"name": "metatool", "description": "OpenAI plugins collected by MetaTool", "tools": tools}]
    by_query: dict[str, set[str]] = {}
    with (root / "all_clean_data.csv").open(encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            by_query.setdefault(row["Query"].strip(), set()).add(f"metatool/{row['Tool']}")
    single = [Query(text, text, frozenset(tools_)) for text, tools_ in by_query.items() if text]
    parts = _split(single, lambda q: q.text)
    multi = [
        Query(f"multi{i}", q["query"], frozenset(f"metatool/{t}" for t in q["tool"]))
        for i, q in enumerate(json.loads((root / "multi_tool_query_golden.json").read_text()))
    ]
    return Dataset("metatool", servers, parts["train"], parts["dev"], parts["test"], {"multi": multi})


_FIELD = re.compile(
    r"(category_name|tool_name|api_name|api_description|required_params|optional_params|return_schema):"
)


def _parse_toollens(text: str) -> dict[str, str]:
    """The corpus text is `key:value, key:value`; values may contain commas, so split on the known keys."""
    parts = _FIELD.split(text)
    fields: dict[str, str] = {}
    for key, value in zip(parts[1::2], parts[2::2], strict=True):
        fields[key] = value.strip().rstrip(",").strip()
    return fields


def _params_schema(required: str, optional: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    req: list[str] = []
    for raw, is_required in ((required, True), (optional, False)):
        try:
            params = json.loads(raw) if raw else []
        except json.JSONDecodeError:
            params = []
        for p in params:
            name = str(p.get("name") or "").strip()
            if not name:
                continue
            kind = {"NUMBER": "number", "BOOLEAN": "boolean"}.get(str(p.get("type", "")).upper(), "string")
            props[name] = {"type": kind, "description": str(p.get("description") or "")[:300]}
            if is_required:
                req.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if req:
        schema["required"] = req
    return schema


def toollens() -> Dataset:
    """Each RapidAPI tool becomes a server; each of its APIs one MCP tool."""
    root = DATASETS / "toollens"
    servers: dict[str, dict[str, Any]] = {}
    key_of_doc: dict[str, str] = {}
    for line in (root / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        f = _parse_toollens(doc["text"])
        server_name = f.get("tool_name", "").strip() or f"tool{doc['_id']}"
        server = servers.setdefault(
            server_name, {"name": server_name, "category": f.get("category_name", ""), "tools": []}
        )
        api = f.get("api_name", "").strip() or f"api{doc['_id']}"
        server["tools"].append(
            {
                "name": api,
                "description": f.get("api_description", ""),
                "inputSchema": _params_schema(f.get("required_params", ""), f.get("optional_params", "")),
            }
        )
        key_of_doc[doc["_id"]] = f"{server_name}/{api}"
    texts = {}
    for line in (root / "queries.jsonl").read_text().splitlines():
        q = json.loads(line)
        texts[q["_id"]] = q["text"]
    labels: dict[str, set[str]] = {}
    with (root / "train.tsv").open() as f:
        next(f)
        for line in f:
            qid, doc_id, score = line.rstrip("\n").split("\t")
            if float(score) > 0:
                labels.setdefault(qid, set()).add(key_of_doc[doc_id])
    queries = [Query(qid, texts[qid], frozenset(rel)) for qid, rel in labels.items()]
    parts = _split(queries, lambda q: q.id)
    return Dataset("toollens", list(servers.values()), parts["train"], parts["dev"], parts["test"], {})


MCP_SERVERS = Path(__file__).resolve().parent / "data" / "mcp_servers"


def server_splits(names: list[str]) -> dict[str, str]:
    """Whole servers go to one split: rank the names by a hash, then every tenth rank by 7 / 1 / 2."""
    ranked = sorted(names, key=lambda n: hashlib.sha1(f"mcp:{n}".encode(), usedforsecurity=False).hexdigest())
    return {n: "train" if i % 10 < 7 else "dev" if i % 10 == 7 else "test" for i, n in enumerate(ranked)}


def mcp_servers() -> Dataset:
    """Real MCP servers' tools (from their packages) with requests written for them (data/mcp_servers/README.md).

    Split by server, not by request: dev and test requests are about servers whose tools no training saw, the stand-in
    for a freshly imported server. The catalog is every server; `train_servers` limits training to the train split.
    """
    keep = ("name", "description", "tools")  # the file also records each server's package and licence
    servers = [{k: s[k] for k in keep} for s in json.loads((MCP_SERVERS / "tools.json").read_text())]
    split = server_splits([s["name"] for s in servers])
    parts: dict[str, list[Query]] = {"train": [], "dev": [], "test": []}
    for n, line in enumerate((MCP_SERVERS / "queries.jsonl").read_text().splitlines()):
        q = json.loads(line)
        where = {split[t.split("/", 1)[0]] for t in q["tools"]}
        if len(where) == 1:  # a request spanning two splits' servers belongs to none
            parts[where.pop()].append(Query(f"mcp{n}", q["text"], frozenset(q["tools"])))
    return Dataset("mcp", servers, parts["train"], parts["dev"], parts["test"], {})


def train_servers(dataset: Dataset) -> list[dict[str, Any]]:
    """The servers a model may be trained on: all of MetaTool's and ToolLens's, the train split of `mcp`'s."""
    if dataset.name != "mcp":
        return dataset.servers
    split = server_splits([s["name"] for s in dataset.servers])
    return [s for s in dataset.servers if split[s["name"]] == "train"]


def write_import_file(dataset: Dataset, path: Path) -> Path:
    path.write_text(json.dumps(dataset.servers))
    return path


if __name__ == "__main__":
    for ds in (metatool(), toollens(), mcp_servers()):
        n_tools = sum(len(s["tools"]) for s in ds.servers)
        print(ds.name, "tools", n_tools, "train", len(ds.train), "dev", len(ds.dev), "test", len(ds.test))
