"""``/alarms``: the line's alarm book over HTTP (``sortline.alarms``).

``GET /alarms``: active alarms, cleared ones and the journal;
``POST /alarms/{key}/ack``: acknowledge an active alarm (who: the API key's
name; when). Reading needs a ``maintenance`` key, acknowledging ``operator``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from sortline.alarms import (
    AlarmBook,
    AlarmsView,
    AlarmView,
    NothingToAcknowledgeError,
    UnknownAlarmError,
)
from sortline.auth import AUTH_RESPONSES, Principal, record, require

__all__ = ["AckRequest", "alarms_router"]


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    who: str | None = Field(
        None, min_length=1, max_length=64, description="a note for the audit log; the key is who"
    )


def alarms_router(line: object) -> APIRouter:
    """Routes over ``line.alarms`` (an ``AlarmBook``; 503 when the line has none)."""
    router = APIRouter(tags=["alarms"])

    def book() -> AlarmBook:
        found = getattr(line, "alarms", None)
        if not isinstance(found, AlarmBook):
            raise HTTPException(status_code=503, detail="this line keeps no alarm book")
        return found

    @router.get(
        "/alarms",
        response_model=AlarmsView,
        responses={**AUTH_RESPONSES, 503: {"description": "the line keeps no alarm book"}},
        dependencies=[Depends(require("maintenance"))],
    )
    def alarms() -> AlarmsView:
        return book().view()

    @router.post(
        "/alarms/{key}/ack",
        response_model=AlarmView,
        responses={
            **AUTH_RESPONSES,
            400: {"description": "the body is not valid JSON"},
            404: {"description": "no such alarm"},
            409: {"description": "the alarm is not active, or acknowledged already"},
            503: {"description": "the line keeps no alarm book"},
        },
    )
    def acknowledge(
        request: Request,
        key: str,
        req: AckRequest,
        who: Annotated[Principal, Depends(require("operator"))],
    ) -> AlarmView:
        note = "" if req.who is None else f" (body who: {req.who!r})"
        try:
            view = book().acknowledge(key, who.name)
        except UnknownAlarmError:
            record(request, who, 404, f"no alarm {key!r}{note}")
            raise HTTPException(status_code=404, detail=f"no alarm {key!r}") from None
        except NothingToAcknowledgeError as exc:
            record(request, who, 409, f"{exc}{note}")
            raise HTTPException(status_code=409, detail=str(exc)) from None
        record(request, who, 200, f"acknowledged {key}{note}")
        return view

    return router
