"""The model gateway's behaviour: resolve the model, check credits, call the Router, account for usage."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from decimal import ROUND_UP, Decimal
from typing import Any

import anyio
import httpx

from isa.auth.principal import Principal
from isa.core.db import Database
from isa.core.embeddings import shared_minilm
from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.model import store
from isa.model.direct import DirectStream, has_usage, model_member, rename_model
from isa.model.gateway import AnyStream, Gateway, Served, upstream_error
from isa.model.sanitize import SCHEMA_STRICT_PROVIDERS, ToolNames, prepare_tools, restore_tool_names
from isa.model.settings import LOCAL_EMBEDDING_MODEL, Deployment, ModelSettings
from isa.model.usage import CreditGate, Pending, UsageWriter, record_usage
from isa.users import credits
from isa.users.credits import InsufficientCredits

log = get_logger(__name__)

LOCAL_EMBEDDING = Deployment(
    name=LOCAL_EMBEDDING_MODEL, model=f"local/{LOCAL_EMBEDDING_MODEL}", provider="local", mode="embedding"
)
_MODEL_TYPES = {"chat": "text", "embedding": "embedding", "image": "image", "transcription": "audio"}
_MILLI = Decimal("0.001")


def _user_of(item: Pending) -> str:
    return item.usage.user_id if item.usage is not None else ""


class ModelService:
    def __init__(self, settings: ModelSettings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.gateway = Gateway(settings)
        self.local = shared_minilm()
        self._model_ids: dict[str, str] = {}
        self.credits = CreditGate(settings.credit_cache_seconds)
        self.usage_writer = UsageWriter(
            self._write_usage,
            self.credits,
            max_queue=settings.usage_queue_size,
            max_batch=settings.usage_batch_size,
            linger=settings.usage_linger_seconds,
        )
        self.started = False

    async def start(self) -> None:
        """Import litellm and build the Router off the event loop (seconds, once per process)."""
        await anyio.to_thread.run_sync(self.gateway.start)
        self.settings = self.gateway.settings  # with the local server's models and the aliases that follow them
        self.started = True

    async def stop(self) -> None:
        """Write every queued usage row before the database closes."""
        await self.usage_writer.close(self.settings.usage_drain_seconds)
        await self.gateway.aclose()

    # -- catalog -------------------------------------------------------------------------------
    def resolve(self, name: str, mode: str) -> str:
        """The model group for a name or alias, checked against what this node can serve."""
        group = self.settings.resolve(name)
        deployments = self.gateway.groups.get(group)
        if deployments:
            if deployments[0].mode != mode:
                raise ApiError(400, "wrong_model_type", f"model {name!r} is a {deployments[0].mode} model, not {mode}")
            return group
        if group == LOCAL_EMBEDDING_MODEL and mode == "embedding":
            return group
        if any(d.name == group for d in self.settings.all_deployments):
            raise ApiError(
                503, "model_unavailable", f"no deployment of {group!r} has its provider credentials configured"
            )
        raise ApiError(404, "model_not_found", f"no model or alias named {name!r}")

    def catalog(self) -> list[dict[str, Any]]:
        """Every servable model group and alias, with its type and providers."""
        groups: dict[str, dict[str, Any]] = {}
        for name, deployments in self.gateway.groups.items():
            groups[name] = {
                "id": name,
                "mode": deployments[0].mode,
                "providers": sorted({d.provider for d in deployments}),
                "deployments": [d.id for d in deployments],
            }
        groups.setdefault(
            LOCAL_EMBEDDING_MODEL,
            {
                "id": LOCAL_EMBEDDING_MODEL,
                "mode": "embedding",
                "providers": ["local"],
                "deployments": [LOCAL_EMBEDDING.id],
            },
        )
        out = list(groups.values())
        for alias, target in sorted(self.settings.aliases.items()):
            if target in groups and alias not in groups:
                out.append({**groups[target], "id": alias, "alias_of": target})
        return out

    def _strict_schema(self, group: str) -> bool:
        """True when a schema-strict provider may serve `group` (itself or through a fallback)."""
        seen, todo = set(), [group]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if any(d.provider in SCHEMA_STRICT_PROVIDERS for d in self.gateway.groups.get(name, ())):
                return True
            todo.extend(self.settings.fallbacks.get(name, ()))
        return False

    # -- credits -------------------------------------------------------------------------------
    async def check_credits(self, principal: Principal, estimate: Decimal | None = None) -> None:
        """402 before any provider call when the caller's credits are exhausted (or below `estimate`)."""
        if not self.settings.require_credits:
            return
        needed = max(self.settings.min_credits_per_call, estimate or Decimal(0))
        user = principal.user_id
        cached = self.credits.cached(user)
        if cached is not None and cached >= needed:
            return  # read less than credit_cache_seconds ago, less what this node charged since
        async with self.db.connection() as conn:
            balance = await credits.balance(conn, user)
        if balance is None:
            raise InsufficientCredits(Decimal(0), needed)
        self.credits.remember(user, balance)
        available = balance - self.credits.pending(user)  # charges still queued for writing count too
        if available < needed:
            raise InsufficientCredits(max(available, Decimal(0)), needed)

    def credits_for(self, tokens: int, cost_usd: float, flat: Decimal = Decimal(0)) -> Decimal:
        s = self.settings
        due = Decimal(tokens) / 1000 * s.credits_per_1k_tokens + Decimal(str(cost_usd)) * s.credits_per_usd + flat
        return max(due, s.min_credits_per_call).quantize(_MILLI, rounding=ROUND_UP)

    def usage(
        self,
        principal: Principal,
        request_id: str,
        endpoint: str,
        kind: str,
        group: str,
        deployment: Deployment,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float | None = None,
        units: Decimal = Decimal(0),
        flat_credits: Decimal = Decimal(0),
        started: float = 0.0,
        status: str = "completed",
        **metadata: Any,
    ) -> store.Usage:
        """The usage row for one call; the cost comes from litellm's local cost map when not given."""
        if deployment.provider == "local":
            cost, method = 0.0, "local"
        elif cost_usd is not None:
            cost, method = cost_usd, "litellm_cost_map"
        else:
            cost, method = self.gateway.cost(deployment, prompt_tokens, completion_tokens)
        return store.Usage(
            user_id=principal.user_id,
            request_id=request_id,
            endpoint=endpoint,
            event_type=f"model.{kind}",
            operation=endpoint.rsplit("/v1/", 1)[-1].replace("/", "."),
            model_group=group,
            deployment_id=deployment.id,
            model_name=deployment.provider_model,
            provider=deployment.provider,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            units=units,
            cost_usd=Decimal(str(round(cost, 6))),
            calculation_method=method,
            credits_due=self.credits_for(prompt_tokens + completion_tokens, cost, flat_credits),
            latency_ms=(time.perf_counter() - started) * 1000 if started else 0.0,
            status=status,
            metadata=metadata,
        )

    def stream_usage(
        self,
        principal: Principal,
        request_id: str,
        endpoint: str,
        group: str,
        stream: AnyStream,
        messages: list[dict[str, Any]],
        started: float,
    ) -> Callable[[int, int, str], store.Usage]:
        """How a stream's usage row is built once it ends (prompt tokens counted when the provider sent none)."""

        def usage_of(prompt: int, completion: int, status: str) -> store.Usage:
            if not prompt:
                prompt = self.gateway.count_tokens(stream.deployment, messages=messages)
            counted = {"prompt_tokens": prompt, "completion_tokens": completion, "status": status, "stream": True}
            return self.chat_usage(principal, request_id, endpoint, group, stream, started, **counted)

        return usage_of

    async def _model_id(self, conn: Any, deployment: Deployment, dimensions: int | None) -> str:
        key = f"{deployment.provider}/{deployment.provider_model}"
        model_id = self._model_ids.get(key)
        if model_id is None:
            model_type = _MODEL_TYPES[deployment.mode]
            dims = (dimensions or 1) if model_type == "embedding" else None
            model_id = await store.ensure_model(conn, deployment.provider_model, deployment.provider, model_type, dims)
        return model_id

    async def usage_summary(
        self, user_id: str | None, since: datetime, group_by: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Totals and a breakdown of gateway usage since `since`; `user_id` None: every user (admins only)."""
        async with self.db.connection() as conn:
            return await store.usage_summary(conn, user_id, since, group_by)

    async def model_statistics(self, since: datetime) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            return await store.model_statistics(conn, since)

    async def record(self, usage: store.Usage | None, deployment: Deployment, *, failed: bool = False) -> None:
        """Queue the usage row, credit charge and daily statistics of a call (written by the usage writer)."""
        await self.usage_writer.put(Pending(usage, deployment, failed))

    async def _write_usage(self, batch: list[Pending]) -> list[Decimal | None]:
        """Usage rows and charges of a batch, and its statistics summed per model, in one transaction."""
        charged: list[Decimal | None] = [None] * len(batch)
        new_ids: dict[str, str] = {}
        deltas: dict[str, store.StatsDelta] = {}
        # Users in a fixed order, so two writers (two nodes) lock their rows in the same order.
        order = sorted(range(len(batch)), key=lambda i: _user_of(batch[i]))
        async with self.db.transaction() as conn:
            for i in order:
                item = batch[i]
                key = f"{item.deployment.provider}/{item.deployment.provider_model}"
                model_id = self._model_ids.get(key) or new_ids.get(key)
                if model_id is None:
                    dims = item.usage.metadata.get("dimensions") if item.usage else None
                    model_id = new_ids[key] = await self._model_id(conn, item.deployment, dims)
                if item.usage is not None:
                    written = await record_usage(conn, item.usage)
                    charged[i] = written[1] if written else None
                deltas.setdefault(model_id, store.StatsDelta()).add(item.usage, failed=item.failed)
            for model_id in sorted(deltas):
                await store.add_statistics(conn, model_id, deltas[model_id])
        self._model_ids.update(new_ids)  # only ids whose insert committed
        return charged

    async def record_failure(self, group: str) -> None:
        deployments = self.gateway.groups.get(group)
        if deployments:
            await self.record(None, deployments[0], failed=True)

    async def guarded(self, group: str, call: Any) -> Any:
        """Run one Router call inside the total time budget; failures become stable API errors."""
        try:
            with anyio.fail_after(self.settings.total_timeout_seconds):
                return await call
        except ApiError:
            raise
        except Exception as exc:
            error = upstream_error(exc)
            log.warning("upstream_failed", model_group=group, error=type(exc).__name__, code=error.code)
            await self.record_failure(group)
            raise error from None

    # -- chat ----------------------------------------------------------------------------------
    def prepare_chat(self, group: str, payload: dict[str, Any]) -> ToolNames:
        if payload.get("tools") or any(isinstance(m, dict) and m.get("tool_calls") for m in payload["messages"]):
            return prepare_tools(payload, self._strict_schema(group))
        return ToolNames()

    async def chat(self, group: str, payload: dict[str, Any]) -> tuple[Any, ToolNames]:
        names = self.prepare_chat(group, payload)
        served = await self.guarded(group, self.gateway.chat(group, payload))
        for choice in served.body.get("choices", ()):
            restore_tool_names(choice.get("message") or {}, names)
        return served, names

    async def open_stream(self, group: str, payload: dict[str, Any]) -> tuple[AnyStream, ToolNames]:
        names = self.prepare_chat(group, payload)
        payload["stream_options"] = {"include_usage": True}
        stream = await self.guarded(group, self.gateway.chat_stream(group, payload))
        return stream, names

    # -- embeddings ----------------------------------------------------------------------------
    def embedding_estimate(self, texts: list[str]) -> tuple[int, Decimal]:
        """Estimated tokens and credits of embedding `texts`; 422 past `max_embedding_tokens`, before any work."""
        tokens = estimate_tokens(texts)
        if tokens > self.settings.max_embedding_tokens:
            raise ApiError(
                422,
                "invalid_request",
                f"the input is about {tokens} tokens; at most {self.settings.max_embedding_tokens} per request",
            )
        return tokens, self.credits_for(tokens, 0.0)

    async def embed(
        self, group: str, texts: list[str], dimensions: int | None
    ) -> tuple[list[list[float]], Deployment, int, float | None]:
        """Vectors for `texts`, from the local model or a provider; with tokens and cost."""
        if group == LOCAL_EMBEDDING_MODEL and group not in self.gateway.groups:
            vectors = await self.local.embed(texts)
            return vectors, LOCAL_EMBEDDING, estimate_tokens(texts), 0.0
        params = {"dimensions": dimensions} if dimensions else {}
        served = await self.guarded(group, self.gateway.embed(group, texts, **params))
        vectors = [item["embedding"] for item in sorted(served.body["data"], key=lambda item: item["index"])]
        return vectors, served.deployment, served.prompt_tokens, served.cost_usd

    def chat_usage(
        self,
        principal: Principal,
        request_id: str,
        endpoint: str,
        group: str,
        served: Served | AnyStream,
        started: float,
        **tokens: Any,
    ) -> store.Usage:
        """The usage row of a chat: an answer's own tokens and price, or a stream's `tokens` counted as it ended."""
        if isinstance(served, Served):
            tokens = {"prompt_tokens": served.prompt_tokens, "completion_tokens": served.completion_tokens}
            tokens["cost_usd"] = served.cost_usd  # litellm priced it already (cost map or the deployment's prices)
        return self.usage(principal, request_id, endpoint, "chat", group, served.deployment, started=started, **tokens)

    async def metered_embed(
        self,
        principal: Principal,
        request_id: str,
        endpoint: str,
        group: str,
        texts: list[str],
        dimensions: int | None,
        started: float,
    ) -> tuple[list[list[float]], Deployment, int, store.Usage]:
        """`embed`, with the usage row (timed from `started`) the caller records once it has answered."""
        vectors, deployment, tokens, cost = await self.embed(group, texts, dimensions)
        usage = self.usage(
            principal,
            request_id,
            endpoint,
            "embedding",
            group,
            deployment,
            prompt_tokens=tokens,
            cost_usd=cost,
            started=started,
            dimensions=len(vectors[0]) if vectors else None,
        )
        return vectors, deployment, tokens, usage


async def stream_chunks(
    service: ModelService,
    stream: AnyStream,
    names: ToolNames,
    usage_of: Callable[[int, int, str], store.Usage],
    *,
    include_usage: bool,
    result: dict[str, Any],
) -> AsyncGenerator[dict[str, Any], None]:
    """Upstream chunks (names restored), bounded by the idle timeout; usage recorded however it ends.

    `usage_of(prompt, completion, status)` builds the usage row; `result` receives "usage" and
    "error" (an ApiError, when the provider failed) for the caller's final frames.
    """
    status = "client_disconnected"
    prompt = completion = 0
    text: list[str] = []
    provider_usage = False
    chunks = stream.chunks().__aiter__()
    try:
        while True:
            try:
                with anyio.fail_after(service.settings.stream_idle_timeout_seconds):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            usage = chunk.get("usage")
            if usage:
                prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
                provider_usage = True
            for choice in chunk.get("choices", ()):
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    text.append(delta["content"])
                restore_tool_names(delta, names)
            if usage and not chunk.get("choices") and not include_usage:
                continue
            yield chunk
        status = "completed"
    except Exception as exc:
        status = _failed(exc, TimeoutError, stream, result)
    finally:
        counted = completion if provider_usage else None  # None: count what was streamed
        await _close_and_record(
            service, stream, result, lambda c: usage_of(prompt, c, status), counted, lambda: "".join(text)
        )


async def relay_direct(
    service: ModelService,
    stream: DirectStream,
    names: ToolNames,
    usage_of: Callable[[int, int, str], store.Usage],
    *,
    include_usage: bool,
    model: str,
    result: dict[str, Any],
) -> AsyncGenerator[bytes, None]:
    """A direct stream's SSE frames as they arrive: a byte copy with the caller's model name.

    Only the usage chunk (and, when tool names were renamed, chunks with tool calls) are parsed. The events
    are kept, so a stream cut before its usage chunk is still counted from what was streamed. The idle
    timeout is the HTTP client's read timeout (no timer per chunk).
    """
    status = "client_disconnected"
    prompt = completion = 0
    seen: list[bytes] = []
    provider_usage = False
    member = model_member(model)
    try:
        async for data in stream.events():
            if has_usage(data):
                chunk = json.loads(data)
                prompt, completion = _usage_tokens(chunk.get("usage"))
                provider_usage = True
                if not chunk.get("choices") and not include_usage:
                    continue
            elif names.renamed and b'"tool_calls"' in data:
                chunk = json.loads(data)
                for choice in chunk.get("choices", ()):
                    restore_tool_names(choice.get("delta") or {}, names)
                data = json.dumps(chunk, separators=(",", ":")).encode()
            else:
                seen.append(data)
                if data.startswith(b'{"error"'):
                    raise upstream_error(RuntimeError("the provider sent an error event"))
            yield b"data: " + rename_model(data, member) + b"\n\n"
        status = "completed"
    except Exception as exc:
        status = _failed(exc, httpx.ReadTimeout, stream, result)
    finally:
        counted = completion if provider_usage else None  # None: count what was streamed
        await _close_and_record(
            service, stream, result, lambda c: usage_of(prompt, c, status), counted, lambda: _streamed_text(seen)
        )


async def _close_and_record(
    service: ModelService,
    stream: AnyStream,
    result: dict[str, Any],
    usage_of: Callable[[int], store.Usage],
    completion: int | None,
    streamed_text: Callable[[], str],
) -> None:
    """Close the upstream (bounded) and record the usage however the stream ended, shielded from a cancelled caller."""
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(2):
            await stream.aclose()
        if completion is None:
            completion = service.gateway.count_tokens(stream.deployment, text=streamed_text())
        usage_row = usage_of(completion)
        result["usage"] = usage_row
        await service.record(usage_row, stream.deployment)


def _failed(exc: Exception, idle: type[Exception], stream: AnyStream, result: dict[str, Any]) -> str:
    """The status of a stream that raised `exc` (`idle`: the provider stopped sending); its error into `result`."""
    if isinstance(exc, idle):
        result["error"] = ApiError(504, "upstream_timeout", "the model provider stopped sending")
    else:
        result["error"] = upstream_error(exc)
        log.warning("stream_failed", deployment=stream.deployment.id, error=type(exc).__name__)
    return "provider_error"


def _usage_tokens(usage: Any) -> tuple[int, int]:
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _streamed_text(events: list[bytes]) -> str:
    """The content deltas of the events relayed so far (parsed only for a stream that sent no usage)."""
    text = []
    for data in events:
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        for choice in chunk.get("choices", ()) if isinstance(chunk, dict) else ():
            content = (choice.get("delta") or {}).get("content")
            if isinstance(content, str):
                text.append(content)
    return "".join(text)


def estimate_tokens(texts: list[str]) -> int:
    """Tokens of `texts` by the usual estimate of ~4 characters per token (the local tokenizer isn't exposed)."""
    return sum((len(t) + 3) // 4 for t in texts)
