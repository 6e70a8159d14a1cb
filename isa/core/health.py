"""/health (liveness, touches nothing), /health/ready (dependencies, bounded) and /metrics on every role."""

from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import isa
from isa.core.builder import AppBuilder, AppState, NotReady, ReadyCheck
from isa.core.errors import error_body, request_id_of


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.isa
    return state


async def live(request: Request) -> Response:
    state = _state(request)
    return JSONResponse({"status": "ok", "role": state.role, "version": isa.__version__})


async def _run_checks(checks: dict[str, ReadyCheck], limit: float) -> dict[str, str]:
    results: dict[str, str] = {}

    async def one(name: str, check: ReadyCheck) -> None:
        try:
            with anyio.fail_after(limit):
                await check()
            results[name] = "ok"
        except TimeoutError:
            results[name] = f"timed out after {limit:g}s"
        except NotReady as exc:
            results[name] = exc.code
        except Exception as exc:
            # Name the failure class only: messages can carry hosts or credentials.
            results[name] = f"failed: {type(exc).__name__}"

    async with anyio.create_task_group() as tg:
        for name, check in checks.items():
            tg.start_soon(one, name, check)
    return results


def ready_endpoint(checks: dict[str, ReadyCheck]) -> Route:
    async def ready(request: Request) -> Response:
        state = _state(request)
        if state.shutting_down:
            body = error_body("shutting_down", "this node is shutting down", request_id_of(request))
            return JSONResponse({**body, "checks": {}}, status_code=503)
        results = await _run_checks(checks, state.settings.health.ready_timeout_seconds)
        failing = sorted(name for name, result in results.items() if result != "ok")
        if failing:
            message = "not ready: " + ", ".join(f"{name} {results[name]}" for name in failing)
            # Checks that said why (NotReady) report a code, others "failed: ..." or "timed out ...":
            # when every failure gave the same code, that code is the answer's.
            reasons = {results[name] for name in failing}
            code = reasons.pop() if len(reasons) == 1 and next(iter(reasons)).isidentifier() else "not_ready"
            body = error_body(code, message, request_id_of(request))
            return JSONResponse({**body, "checks": results}, status_code=503)
        return JSONResponse({"status": "ready", "role": state.role, "checks": results})

    return Route("/health/ready", ready, methods=["GET"])


async def metrics(request: Request) -> Response:
    state = _state(request)
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


def register(builder: AppBuilder) -> None:
    db = builder.state.db
    builder.add_ready_check("database", lambda: db.ping(builder.settings.health.ready_timeout_seconds))
    builder.add_routes(
        Route("/health", live, methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
        # The checks dict is filled by domains after this call; the endpoint reads it at request time.
        ready_endpoint(builder.ready_checks),
        Route("/metrics", metrics, methods=["GET"]),
    )
