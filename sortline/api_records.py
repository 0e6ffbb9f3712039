"""``/records``: the production records over HTTP (``sortline.records``).

Reads (maintenance): per-minute composition, decisions, lots, shifts, the
lot certificate (printable HTML) and the CSV/JSON export. Lots are opened
and closed by operators; each change and refusal goes to the audit log.
A line without records, or a records database that cannot be read now,
answers 503 naming why.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sortline.auth import AUTH_RESPONSES, Detail, Principal, record, require
from sortline.records import LotError, Records, StoreUnavailableError
from sortline.records.certificate import render_certificate
from sortline.records.export import to_csv, to_json

__all__ = ["records_router"]

MAX_DECISIONS = 100_000


class FractionView(BaseModel):
    count: int
    purity_est: float | None = Field(description="mean probability of belonging there")


class MinuteView(BaseModel):
    t_unix_s: float = Field(description="start of the minute")
    line: str
    fragments: int
    ejected: int
    classes: dict[str, int]
    fractions: dict[str, FractionView]


class MinutesView(BaseModel):
    minutes: list[MinuteView]


class DecisionView(BaseModel):
    id: int
    line: str
    boot: str = Field(description="the controller run the track id belongs to")
    track_id: int
    frame_id: int
    t_unix_s: float
    tick: int = Field(description="encoder count of the deciding frame")
    cls: str
    class_prob: float | None
    fraction: str
    p_fraction: float | None = Field(description="probability it belongs in its fraction")
    ejected: bool
    actuator: int | None
    first_valve: int | None
    last_valve: int | None
    on_tick: int | None
    off_tick: int | None
    pulses: int = Field(description="pulses commanded for it (0: none)")
    pulse_result: str = Field(
        description="acked | unknown (a pulse near it failed) | sent (fate not known yet) | "
        "not_sent (deadline missed, off the bar) | none (pass fraction)"
    )
    lot_id: int | None
    recipe: str
    recipe_version: int
    model: str
    model_version: str
    calibration_version: int | None


class DecisionsView(BaseModel):
    decisions: list[DecisionView]


class LotView(BaseModel):
    id: int
    name: str
    source: str
    line: str
    opened_unix_s: float
    closed_unix_s: float | None
    opened_by: str
    closed_by: str | None
    fractions: dict[str, FractionView]
    classes: dict[str, int]


class LotsView(BaseModel):
    lots: list[LotView]


class LotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=100)
    source: str = Field(min_length=1, max_length=200, description="where the material came from")


class ShiftView(BaseModel):
    name: str
    start_unix_s: float
    end_unix_s: float
    fractions: dict[str, FractionView]
    classes: dict[str, int]


class ShiftsView(BaseModel):
    shifts: list[ShiftView]


_READ = {**AUTH_RESPONSES, 503: {"description": "no records on this line, or unreadable now"}}
LotId = Annotated[int, Path(ge=0, le=2**63 - 1)]
Day = Annotated[
    str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", json_schema_extra={"format": "date"})
]
LotQuery = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
_LOT_404 = {**_READ, 404: {"description": "no such lot, or none open"}}
_CHANGE = {
    **_READ,
    400: {"description": "the body is not valid JSON"},
    409: {"description": "no lot is open"},
}


def records_router(line: object) -> APIRouter:
    """Routes over the line's ``records`` (503 when it has none)."""
    router = APIRouter(prefix="/records", tags=["records"])
    maint = [Depends(require("maintenance"))]

    def recs() -> Records:
        r = getattr(line, "records", None)
        if not isinstance(r, Records):
            raise HTTPException(status_code=503, detail="records are off on this line")
        return r

    def read(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except StoreUnavailableError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None

    def window(since: float | None, until: float | None, span_s: float) -> tuple[float, float]:
        """(since, until) with defaults; since after until is an empty window."""
        until = time.time() if until is None else until
        since = until - span_s if since is None else since
        return since, until

    @router.get("/minutes", response_model=MinutesView, responses=_READ, dependencies=maint)
    def minutes(
        since_unix_s: float | None = None,
        until_unix_s: float | None = None,
        line: str | None = None,
    ) -> dict[str, Any]:
        """Per-minute composition (default: the last 60 minutes)."""
        since, until = window(since_unix_s, until_unix_s, 3600.0)
        return {"minutes": read(recs().reader.minutes, since, until, line)}

    @router.get("/decisions", response_model=DecisionsView, responses=_READ, dependencies=maint)
    def decisions(
        since_unix_s: float | None = None,
        until_unix_s: float | None = None,
        lot: LotQuery = None,
        cls: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_DECISIONS)] = 1000,
    ) -> dict[str, Any]:
        """One row per sort decision, oldest first."""
        rows = read(recs().reader.decisions, since_unix_s, until_unix_s, lot, cls, limit)
        return {"decisions": rows}

    @router.get("/lots", response_model=LotsView, responses=_READ, dependencies=maint)
    def lots() -> dict[str, Any]:
        """Every lot, newest first, with its counts."""
        return {"lots": read(recs().reader.lots)}

    @router.get("/lots/current", response_model=LotView, responses=_LOT_404, dependencies=maint)
    def current() -> dict[str, Any]:
        lot = read(recs().reader.current_lot)
        if lot is None:
            raise HTTPException(status_code=404, detail="no lot is open")
        return dict(lot)

    @router.get("/lots/{lot_id}", response_model=LotView, responses=_LOT_404, dependencies=maint)
    def lot(lot_id: LotId) -> dict[str, Any]:
        got = read(recs().reader.lot, lot_id)
        if got is None:
            raise HTTPException(status_code=404, detail=f"no lot {lot_id}")
        return dict(got)

    @router.get(
        "/lots/{lot_id}/certificate",
        response_model=None,
        responses={**_LOT_404, 200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
        dependencies=maint,
    )
    def certificate(lot_id: LotId) -> HTMLResponse:
        """The lot certificate, printable: per output fraction what went in."""
        r = recs()
        data = read(r.reader.certificate_data, lot_id)
        if data is None:
            raise HTTPException(status_code=404, detail=f"no lot {lot_id}")
        return HTMLResponse(render_certificate(data, r.where))

    @router.post("/lots", response_model=LotView, responses=_CHANGE)
    def open_lot(
        request: Request,
        req: LotRequest,
        who: Annotated[Principal, Depends(require("operator"))],
    ) -> dict[str, Any]:
        """Open a lot (the open one, if any, is closed first)."""
        try:
            new, closed = recs().open_lot(req.name, req.source, who.name)
        except StoreUnavailableError as exc:
            record(request, who, 503, f"lot {req.name!r} not opened: {exc}")
            raise HTTPException(status_code=503, detail=str(exc)) from None
        was = "" if closed is None else f" (closed lot {closed['id']} {closed['name']!r})"
        record(request, who, 200, f"lot {new['id']} {req.name!r} from {req.source!r} opened{was}")
        return new

    @router.post("/lots/current/close", response_model=LotView, responses=_CHANGE)
    def close_lot(
        request: Request, who: Annotated[Principal, Depends(require("operator"))]
    ) -> dict[str, Any]:
        try:
            lot = recs().close_lot(who.name)
        except LotError as exc:
            record(request, who, 409, str(exc))
            raise HTTPException(status_code=409, detail=str(exc)) from None
        except StoreUnavailableError as exc:
            record(request, who, 503, f"lot not closed: {exc}")
            raise HTTPException(status_code=503, detail=str(exc)) from None
        record(request, who, 200, f"lot {lot['id']} {lot['name']!r} closed")
        return lot

    @router.get(
        "/shifts",
        response_model=ShiftsView,
        responses={**_READ, 400: {"model": Detail, "description": "no such date"}},
        dependencies=maint,
    )
    def shifts(day: Day = None) -> dict[str, Any]:
        """The configured shifts starting on ``day`` (YYYY-MM-DD; default today
        in the shifts' time zone)."""
        r = recs()
        try:
            when = (
                dt.datetime.now(tz=r.reader.tz).date()
                if day is None
                else dt.date.fromisoformat(day)
            )
        except ValueError:
            raise HTTPException(status_code=400, detail=f"day {day!r}: no such date") from None
        return {"shifts": read(r.reader.shifts_of, when)}

    @router.get(
        "/export",
        responses={**_READ, 200: {"content": {"text/csv": {}, "application/json": {}}}},
        dependencies=maint,
    )
    def export(
        format: Literal["csv", "json"] = "csv",
        since_unix_s: float | None = None,
        until_unix_s: float | None = None,
        lot: LotQuery = None,
    ) -> Response:
        """Decisions as CSV or JSON (at most 100,000 rows: narrow the window for more)."""
        rows = read(recs().reader.decisions, since_unix_s, until_unix_s, lot, None, MAX_DECISIONS)
        if format == "csv":
            return Response(to_csv(rows), media_type="text/csv")
        return Response(to_json(rows), media_type="application/json")

    return router
