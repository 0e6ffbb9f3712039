"""Status API for operators, maintenance and engineers (FastAPI).

Reads only the snapshots the real-time loop publishes; commands go through the
line's state machine, which refuses what the current state does not allow.

Every route but ``/``, ``/health`` and ``/metrics`` needs an API key
(``sortline.auth``): ``maintenance`` reads, ``operator`` commands the line and
acknowledges alarms, ``engineer`` uploads recipes and reads ``/audit``. A
change is made in the key's name; a ``who`` in the body is kept only as a note
in the audit log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any, Literal, Protocol

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from core.errors import InputFileError
from sortline.api_alarms import alarms_router
from sortline.api_calibration import calibration_router
from sortline.api_limits import BodyLimit, body_limit_of
from sortline.api_metrics import metrics_router
from sortline.api_model import model_router
from sortline.api_recipes import recipes_router
from sortline.api_records import records_router
from sortline.api_stream import stream_router
from sortline.api_valves import valves_router
from sortline.auth import (
    AUTH_RESPONSES,
    AuditLog,
    KeyBook,
    Principal,
    audit_router,
    record,
    require,
)
from sortline.state import Command, PackMLState, TransitionError
from sortline.status import StatusSnapshot


class LineLike(Protocol):
    def snapshot(self) -> StatusSnapshot: ...

    def command(self, cmd: Command, who: str) -> PackMLState: ...

    def recipe_info(self) -> dict[str, Any]: ...

    def switch_recipe(self, text: str, who: str) -> dict[str, Any]: ...


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    state: str
    causes: list[str]


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    who: str | None = Field(
        None, min_length=1, max_length=64, description="a note for the audit log; the key is who"
    )


class CommandResult(BaseModel):
    state: str


class RecipeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    toml: str = Field(  # 5,000 characters fit the 64 KiB body limit, however JSON escapes them
        min_length=1, max_length=5_000, description="the recipe file's text"
    )
    who: str | None = Field(
        None, min_length=1, max_length=64, description="a note for the audit log; the key is who"
    )


class RecipeInfo(BaseModel):
    name: str
    version: int
    source: str
    targets: dict[str, str]
    thresholds: dict[str, float]
    priorities: dict[str, int]
    switched_by: str | None
    switched_unix_s: float | None


def _note(who: str | None) -> str:
    return "" if who is None else f" (body who: {who!r})"


def create_app(
    line: LineLike, keys: KeyBook, audit: AuditLog, preview_inline: bool = False
) -> FastAPI:
    """The app over ``line``; ``keys`` decide who may call what, ``audit``
    records every change and every refused key. ``preview_inline``: draw the
    camera preview in this process (the API's own: ``sortline.api_proc``)."""
    app = FastAPI(title="sortline", version="0.1.0", description=__doc__)
    app.state.keys = keys
    app.state.audit = audit
    app.add_middleware(BodyLimit, max_bytes=body_limit_of(line))
    dashboard = resources.files("sortline").joinpath("static/dashboard.html").read_text("utf-8")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """As FastAPI's, but a 405 lists every method the path has (Starlette
        names only the first route's)."""
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            methods: set[str] = set()
            for route in app.router.routes:
                match, _ = route.matches(request.scope)
                if match is not Match.NONE:
                    methods |= set(getattr(route, "methods", None) or ())
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return dashboard

    @app.get("/health", response_model=Health)
    def health() -> Health:
        st = line.snapshot()
        ok = st.state == PackMLState.EXECUTE.name
        return Health(status="ok" if ok else "degraded", state=st.state, causes=list(st.causes))

    @app.get(
        "/status",
        response_model=StatusSnapshot,
        responses=AUTH_RESPONSES,
        dependencies=[Depends(require("maintenance"))],
    )
    def status() -> StatusSnapshot:
        return line.snapshot()

    @app.post(
        "/commands/{command}",
        response_model=CommandResult,
        responses={
            **AUTH_RESPONSES,
            400: {"description": "the body is not valid JSON"},
            409: {"description": "not allowed in the current state, or refused by the PLC"},
        },
    )
    def command(
        request: Request,
        command: Literal["start", "stop", "reset"],
        req: CommandRequest,
        who: Annotated[Principal, Depends(require("operator"))],
    ) -> CommandResult:
        try:
            new = line.command(Command(command), who=who.name)
        except TransitionError as exc:
            record(request, who, 409, str(exc) + _note(req.who))
            raise HTTPException(status_code=409, detail=str(exc)) from None
        record(request, who, 200, f"now {new.name}" + _note(req.who))
        return CommandResult(state=new.name)

    @app.get(
        "/recipe",
        response_model=RecipeInfo,
        responses=AUTH_RESPONSES,
        dependencies=[Depends(require("maintenance"))],
    )
    def recipe() -> dict[str, Any]:
        return line.recipe_info()

    @app.put(
        "/recipe",
        response_model=RecipeInfo,
        responses={
            **AUTH_RESPONSES,
            400: {"description": "the body is not valid JSON"},
            413: {"description": "the body is larger than [api] max_body_bytes"},
            422: {"description": "the recipe is malformed or names unknown classes"},
        },
    )
    def switch_recipe(
        request: Request,
        req: RecipeRequest,
        who: Annotated[Principal, Depends(require("engineer"))],
    ) -> dict[str, Any]:
        try:
            info = line.switch_recipe(req.toml, who=who.name)
        except (InputFileError, ValueError) as exc:
            record(request, who, 422, f"recipe refused: {exc}" + _note(req.who))
            raise HTTPException(status_code=422, detail=str(exc)) from None
        record(request, who, 200, f"recipe {info['name']} v{info['version']}" + _note(req.who))
        return info

    app.include_router(metrics_router(line))
    app.include_router(alarms_router(line))
    app.include_router(valves_router(line))
    app.include_router(recipes_router(line))
    app.include_router(model_router(line))
    app.include_router(calibration_router(line))
    closers: list[Callable[[], None]] = []  # run by ApiServer.stop
    app.state.on_close = closers
    app.include_router(stream_router(line, closers, preview_inline))
    app.include_router(records_router(line))
    app.include_router(audit_router())
    return app


class ApiServer:
    """uvicorn in a daemon thread of this process; ``start`` returns once it
    is listening. For an app over objects of this process that need not be
    a line's (tests of the app itself); ``sortline run`` serves the line's API
    from a process of its own (``sortline.api_proc.ApiProcess``, the same
    app), so that HTTP never holds the frame loop's GIL."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._on_close: list[Callable[[], None]] = getattr(app.state, "on_close", [])
        self._thread = threading.Thread(target=self.server.run, name="api", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the status API failed to start (port in use?)")
            if time.monotonic() > deadline:
                raise RuntimeError("the status API did not start in time")
            time.sleep(0.02)

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", [])
        for s in servers:
            for sock in s.sockets:
                return int(sock.getsockname()[1])
        return int(self.server.config.port)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=5.0)
        for close in self._on_close:
            close()
