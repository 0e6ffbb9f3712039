"""``/valves``: the valve bar over HTTP (``sortline.valves``).

``GET /valves`` (maintenance): per valve its position, the PLC's cycle
counter, cycles in the last minute, when it last fired, whether it is enabled
(and who disabled it, when, why) and a health verdict by the alarms' rule.
``POST /valves/{n}/disable`` and ``/enable`` (engineer): the scheduler honours
it from the line's next cycle (``SortingLine.set_valve_enabled``); every
change and refusal goes to the audit log.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from sortline.auth import AUTH_RESPONSES, Principal, record, require
from sortline.runtime import SortingLine
from sortline.valves import (
    Health,
    OperatorDisable,
    UnknownValveError,
    ValveRefusedError,
    health,
)

__all__ = ["DisabledBy", "ValveChange", "ValveView", "ValvesView", "valves_router"]


class ValveChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: str | None = Field(None, min_length=1, max_length=200, description="for the audit log")


class DisabledBy(BaseModel):
    who: str = Field(description="the API key's name")
    t_unix_s: float
    reason: str


class ValveView(BaseModel):
    index: int
    x_mm: float = Field(description="centre of the valve's zone across the belt")
    cycles: int | None = Field(description="the PLC's counter (None: not read yet)")
    cycles_last_minute: int | None = Field(description="over the last 60 s, or since first read")
    last_used_unix_s: float | None = Field(description="when the counter last moved, as seen")
    enabled: bool
    disabled_by_calibration: bool
    disabled_by_operator: DisabledBy | None
    health: Health


class ValvesView(BaseModel):
    n_valves: int
    pitch_mm: float
    health_window_s: float = Field(description="cycles the verdict compares (alarms' window)")
    valves: list[ValveView]


def _disabled_by(d: OperatorDisable | None) -> DisabledBy | None:
    return None if d is None else DisabledBy(who=d.who, t_unix_s=d.t_unix_s, reason=d.reason)


def _at(arr: np.ndarray | None, v: int) -> int | None:
    return None if arr is None or v >= len(arr) else int(arr[v])


def _when(arr: np.ndarray | None, v: int) -> float | None:
    return None if arr is None or v >= len(arr) or np.isnan(arr[v]) else float(arr[v])


def valves_view(line: SortingLine) -> ValvesView:
    """The bar now, with the PLC's counters read fresh from the bridge (a
    counter list of another length than the bar: None)."""
    now = time.time()
    line.valve_usage.add(now, line.parts.bridge.snapshot().valve_cycles)
    use = line.valve_usage.view(now)
    bar = line.parts.params.geometry.valves
    a = line.cfg.alarms
    verdicts = health(use.ran, a.valve_min_cycles, a.valve_weak_share, a.valve_window_s)
    by_cal, by_op = set(line.calibration_disabled_valves()), dict(line.valves_off)
    x_mm = bar.valve_centre_mm(np.arange(bar.n_valves)).tolist()
    valves = [
        ValveView(
            index=v,
            x_mm=x_mm[v],
            cycles=_at(use.cycles, v),
            cycles_last_minute=_at(use.last_minute, v),
            last_used_unix_s=_when(use.last_used_unix_s, v),
            enabled=v not in by_cal and v not in by_op,
            disabled_by_calibration=v in by_cal,
            disabled_by_operator=_disabled_by(by_op.get(v)),
            health=verdicts[v] if v < len(verdicts) else "unknown",
        )
        for v in range(bar.n_valves)
    ]
    return ValvesView(
        n_valves=bar.n_valves, pitch_mm=bar.pitch_mm, health_window_s=a.valve_window_s,
        valves=valves,
    )  # fmt: skip


_CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    400: {"description": "the body is not valid JSON"},
    404: {"description": "the bar has no such valve"},
    409: {"description": "the last enabled valve, or one the calibration disabled"},
    503: {"description": "not a sorting line"},
}


def valves_router(line: object) -> APIRouter:
    """Routes over a ``SortingLine`` (503 for anything else)."""
    router = APIRouter(tags=["valves"])

    def the_line() -> SortingLine:
        if not isinstance(line, SortingLine):
            raise HTTPException(status_code=503, detail="this line has no valve bar to show")
        return line

    def change(
        request: Request, n: int, enable: bool, who: Principal, req: ValveChange | None
    ) -> ValveView:
        reason = "" if req is None or req.reason is None else req.reason
        note = f": {reason}" if reason else ""
        try:
            the_line().set_valve_enabled(n, enable, who.name, reason)
        except UnknownValveError as exc:
            record(request, who, 404, f"{exc}{note}")
            raise HTTPException(status_code=404, detail=str(exc)) from None
        except ValveRefusedError as exc:
            record(request, who, 409, f"{exc}{note}")
            raise HTTPException(status_code=409, detail=str(exc)) from None
        record(request, who, 200, f"valve {n} {'enabled' if enable else 'disabled'}{note}")
        return valves_view(the_line()).valves[n]

    @router.get(
        "/valves",
        response_model=ValvesView,
        responses={**AUTH_RESPONSES, 503: _CHANGE_RESPONSES[503]},
        dependencies=[Depends(require("maintenance"))],
    )
    def valves() -> ValvesView:
        return valves_view(the_line())

    @router.post("/valves/{n}/disable", response_model=ValveView, responses=_CHANGE_RESPONSES)
    def disable(
        request: Request,
        n: int,
        who: Annotated[Principal, Depends(require("engineer"))],
        req: Annotated[ValveChange | None, Body()] = None,
    ) -> ValveView:
        """Never command valve ``n`` again from the line's next cycle."""
        return change(request, n, False, who, req)

    @router.post("/valves/{n}/enable", response_model=ValveView, responses=_CHANGE_RESPONSES)
    def enable(
        request: Request,
        n: int,
        who: Annotated[Principal, Depends(require("engineer"))],
        req: Annotated[ValveChange | None, Body()] = None,
    ) -> ValveView:
        """Let the scheduler use valve ``n`` again (not one the calibration disabled)."""
        return change(request, n, True, who, req)

    return router
