"""``/calibration``: the line's calibration store over HTTP (``calibration.store``).

- ``GET /calibration`` (maintenance): the active version, who activated it and
  when, its key figures, and the line parameters the real-time loop runs on;
- ``GET /calibration/history`` (maintenance): every activation and rollback,
  and every version the store holds;
- ``POST /calibration/{version}/activate`` and ``POST /calibration/rollback``
  (engineer): through the store (atomic, locked, history kept), then the
  line's own path for a newly activated calibration
  (``SortingLine.poll_calibration_now``: controller, vision and the PLC
  bridge's line parameters together, at the loop's next cycle). A version
  that failed its checks needs ``force`` and a note; one that does not fit
  the line (another valve count, say) is refused before the store changes.

Every change and refusal goes to the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from calibration.record import Calibration
from calibration.store import CalibrationStore
from core.errors import InputFileError
from sortline.auth import AUTH_RESPONSES, Principal, record, require

__all__ = ["calibration_router"]


class KeyFigures(BaseModel):
    mm_per_tick: float | None
    y_valve_mm: float | None
    open_delay_ms_median: float | None
    open_delay_ms_max: float | None
    close_delay_ms_median: float | None
    disabled_valves: list[int]
    camera: bool = Field(description="has a lens and belt homography")


class VersionView(BaseModel):
    version: int
    created_by: str
    created_utc: str
    source: str
    passed: bool
    figures: KeyFigures
    quality: dict[str, Any]


class ActivationView(BaseModel):
    version: int
    who: str
    when_utc: str
    action: str
    previous_version: int | None
    note: str


class CalibrationView(BaseModel):
    store: str | None = Field(description="the store's folder (None: nominal geometry only)")
    active: ActivationView | None = Field(description="the store's active entry")
    calibration: VersionView | None = Field(description="the active version's content")
    applied_version: int | None = Field(description="the version the real-time loop runs on")
    line_params: dict[str, float | int | None]
    error: str | None = Field(description="why the line did not take the active version")


class CalibrationHistory(BaseModel):
    activations: list[ActivationView]
    versions: list[VersionView]


class CalibrationChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    note: str | None = Field(None, min_length=1, max_length=200, description="why")
    force: bool = Field(False, description="activate a version that failed its checks")


def _median(values: list[float], skip: list[int]) -> float | None:
    keep = [v for i, v in enumerate(values) if i not in set(skip)]
    return float(np.median(keep)) if keep else None


def version_view(cal: Calibration) -> VersionView:
    v = cal.valves
    skip = [] if v is None else list(v.disabled_valves)
    figures = KeyFigures(
        mm_per_tick=None if cal.belt is None else cal.belt.mm_per_tick,
        y_valve_mm=None if v is None else v.y_valve_mm,
        open_delay_ms_median=None if v is None else _median(v.open_delay_ms, skip),
        open_delay_ms_max=None if v is None else float(max(v.open_delay_ms)),
        close_delay_ms_median=None if v is None else _median(v.close_delay_ms, skip),
        disabled_valves=skip,
        camera=cal.camera is not None,
    )
    return VersionView(
        version=cal.version, created_by=cal.created_by, created_utc=cal.created_utc,
        source=cal.source, passed=cal.passed, figures=figures, quality=dict(cal.quality),
    )  # fmt: skip


_CHANGE: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    400: {"description": "the body is not valid JSON"},
    404: {"description": "no such version"},
    413: {"description": "the body is larger than [api] max_body_bytes"},
    409: {"description": "no calibration store, or nothing to roll back to"},
    422: {"description": "failed its checks (force it with a note), or does not fit the line"},
}


def calibration_router(line: Any) -> APIRouter:
    router = APIRouter(tags=["calibration"])

    def store() -> CalibrationStore | None:
        live = getattr(getattr(line, "parts", None), "calibration", None)
        return None if live is None else live.store

    def view() -> CalibrationView:
        s = store()
        params = line.parts.params
        if s is None:
            return CalibrationView(
                store=None, active=None, calibration=None, applied_version=None,
                line_params=params.summary(), error=None,
            )  # fmt: skip
        live = line.parts.calibration
        rec = s.active_record()
        cal = live.calibration
        return CalibrationView(
            store=str(s.folder),
            active=None if rec is None else ActivationView(**rec.to_dict()),
            calibration=None if cal is None else version_view(cal),
            applied_version=params.calibration_version,
            line_params=params.summary(),
            error=live.error,
        )

    def the_store(request: Request, who: Principal) -> CalibrationStore:
        s = store()
        if s is None:
            detail = "no calibration store: set [calibration] store in the line config"
            record(request, who, 409, detail)
            raise HTTPException(409, detail=detail)
        return s

    def applied(request: Request, who: Principal, what: str) -> CalibrationView:
        line.poll_calibration_now()  # the line's own path: applied at the loop's next cycle
        record(request, who, 200, what)
        return view()

    @router.get(
        "/calibration",
        response_model=CalibrationView,
        responses=AUTH_RESPONSES,
        dependencies=[Depends(require("maintenance"))],
    )
    def active() -> CalibrationView:
        """The active calibration and the parameters the line runs on."""
        return view()

    @router.get(
        "/calibration/history",
        response_model=CalibrationHistory,
        responses=AUTH_RESPONSES,
        dependencies=[Depends(require("maintenance"))],
    )
    def history() -> CalibrationHistory:
        """Activations and rollbacks (oldest first) and every version held."""
        s = store()
        if s is None:
            return CalibrationHistory(activations=[], versions=[])
        versions = []
        for v in s.versions():
            try:
                versions.append(version_view(s.load(v)))
            except InputFileError:
                continue  # a damaged file is reported when someone tries to activate it
        acts = [ActivationView(**a.to_dict()) for a in s.history()]
        return CalibrationHistory(activations=acts, versions=versions)

    @router.post("/calibration/rollback", response_model=CalibrationView, responses=_CHANGE)
    def rollback(
        request: Request,
        who: Annotated[Principal, Depends(require("engineer"))],
        req: Annotated[CalibrationChange | None, Body()] = None,
    ) -> CalibrationView:
        """Return to the version active before the current one."""
        s = the_store(request, who)
        note = "" if req is None or req.note is None else req.note
        try:
            entry = s.rollback(who.name, note)
        except InputFileError as exc:
            record(request, who, 409, str(exc))
            raise HTTPException(409, detail=str(exc)) from None
        return applied(request, who, f"calibration rolled back to v{entry.version}: {entry.note}")

    @router.post(
        "/calibration/{version}/activate", response_model=CalibrationView, responses=_CHANGE
    )
    def activate(
        request: Request,
        version: Annotated[int, Path(ge=1, le=999_999)],
        who: Annotated[Principal, Depends(require("engineer"))],
        req: Annotated[CalibrationChange | None, Body()] = None,
    ) -> CalibrationView:
        """Make ``version`` the active calibration; the line takes it at once."""
        s = the_store(request, who)
        req = req or CalibrationChange()
        if version not in s.versions():
            detail = f"no calibration version {version} (have: {s.versions()})"
            record(request, who, 404, detail)
            raise HTTPException(404, detail=detail)
        try:
            s.load(version).apply(line.parts.calibration.base)  # fits this line?
            s.activate(version, who.name, req.note or "", force=req.force)
        except (InputFileError, ValueError) as exc:
            record(request, who, 422, str(exc))
            raise HTTPException(422, detail=str(exc)) from None
        return applied(request, who, f"calibration v{version} activated{_n(req.note)}")

    return router


def _n(note: str | None) -> str:
    return f": {note}" if note else ""
