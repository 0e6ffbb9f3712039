"""``/alarms``: the line's alarm book over HTTP (``sortline.alarms``).

``GET /alarms``: active alarms, cleared ones and the journal;
``POST /alarms/{key}/ack``: acknowledge an active alarm (who, when).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from sortline.alarms import (
    AlarmBook,
    AlarmsView,
    AlarmView,
    NothingToAcknowledgeError,
    UnknownAlarmError,
)

__all__ = ["AckRequest", "alarms_router"]


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    who: str = Field(min_length=1, max_length=64)


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
        responses={503: {"description": "the line keeps no alarm book"}},
    )
    def alarms() -> AlarmsView:
        return book().view()

    @router.post(
        "/alarms/{key}/ack",
        response_model=AlarmView,
        responses={
            400: {"description": "the body is not valid JSON"},
            404: {"description": "no such alarm"},
            409: {"description": "the alarm is not active, or acknowledged already"},
            503: {"description": "the line keeps no alarm book"},
        },
    )
    def acknowledge(key: str, req: AckRequest) -> AlarmView:
        try:
            return book().acknowledge(key, req.who)
        except UnknownAlarmError:
            raise HTTPException(status_code=404, detail=f"no alarm {key!r}") from None
        except NothingToAcknowledgeError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None

    return router
