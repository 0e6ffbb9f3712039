"""``/recipes``: the line's recipe library over HTTP (``sortline.recipe_library``).

- ``GET /recipes`` (maintenance): every recipe version held, shipped and
  uploaded, and which one is active;
- ``GET /recipes/history`` (maintenance): who made which recipe active, when,
  and how (start-up, ``/recipes/{name}/activate``, ``PUT /recipe``);
- ``GET /recipes/{name}?version=N`` (maintenance): its TOML and parsed view
  (highest version when ``version`` is left out);
- ``POST /recipes`` (engineer): upload a recipe (validated against the
  model's classes; 422 with one line saying what and where);
- ``POST /recipes/validate`` (engineer): the same checks, nothing stored;
- ``POST /recipes/{name}/activate`` (operator: "choose a recipe"): switch the
  running line to it through ``SortingLine.switch_recipe``, as ``PUT /recipe``
  does.

Every change and refusal goes to the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from core.errors import InputFileError
from sortline.auth import AUTH_RESPONSES, Principal, record, require
from sortline.recipe_library import (
    RecipeConflictError,
    RecipeEntry,
    RecipeLibrary,
    UnknownRecipeError,
    bound_view,
    entry_view,
)

__all__ = ["recipes_router"]

_NAME = r"^[A-Za-z0-9_.-]{1,32}$"


class RecipeText(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    toml: str = Field(
        min_length=1,
        max_length=5_000,
        description="the recipe file's text (5,000 characters fit the API's 64 KiB body "
        "limit whatever their JSON escaping: up to 12 bytes each)",
    )
    note: str | None = Field(None, min_length=1, max_length=200, description="for the audit log")


def _whole(v: object) -> object:
    """JSON 3.0 is the integer 3 (JSON Schema says so); true is not."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: Annotated[int | None, BeforeValidator(_whole)] = Field(
        None, ge=1, le=2**31, description="None: the highest version held"
    )
    note: str | None = Field(None, min_length=1, max_length=200, description="for the audit log")


class RecipeSummary(BaseModel):
    name: str
    version: int
    origin: Literal["shipped", "uploaded"]
    description: str
    sha256: str
    uploaded_by: str | None
    uploaded_unix_s: float | None
    active: bool = Field(description="the line runs this text now")


class RecipeList(BaseModel):
    active: str = Field(description="name vN of the recipe the line runs")
    recipes: list[RecipeSummary]


class ParsedRecipe(BaseModel):
    file: dict[str, Any] = Field(description="the TOML as validated (defaults filled in)")
    targets: dict[str, str] = Field(description="class -> output fraction (targeted classes)")
    thresholds: dict[str, float]
    priorities: dict[str, int]
    fractions: list[str]
    pass_fraction: str
    pools: dict[str, list[str]] = Field(
        description="class -> the classes whose probability it pools when no class meets "
        "its own threshold (pool_classes; only classes pooling more than themselves)"
    )


class RecipeShown(RecipeSummary):
    toml: str
    parsed: ParsedRecipe


class Validated(BaseModel):
    valid: Literal[True]
    name: str
    version: int
    parsed: ParsedRecipe
    stored: bool = Field(description="a recipe of this name, version and text is held already")


class Uploaded(RecipeSummary):
    new: bool = Field(description="false: the same text was held already")


class ActivationView(BaseModel):
    t_unix_s: float
    who: str
    name: str
    version: int
    sha256: str
    via: str
    previous: str | None
    note: str


class Activated(BaseModel):
    activation: ActivationView
    recipe: RecipeSummary


_BODY: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not valid JSON"},
    413: {"description": "the body is larger than [api] max_body_bytes"},
}
_REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "malformed, names unknown classes, or a reserved name"}
}


def _summary(e: RecipeEntry, active_sha: str) -> RecipeSummary:
    return RecipeSummary(
        name=e.name, version=e.version, origin=e.origin,
        description=e.description, sha256=e.sha256, uploaded_by=e.uploaded_by,
        uploaded_unix_s=e.uploaded_unix_s, active=e.sha256 == active_sha,
    )  # fmt: skip


def recipes_router(line: Any) -> APIRouter:
    """Routes over a line with a ``recipe_library`` (503 for anything else)."""
    router = APIRouter(tags=["recipes"])

    def library() -> RecipeLibrary:
        lib = getattr(line, "recipe_library", None)
        if not isinstance(lib, RecipeLibrary):
            raise HTTPException(503, detail="this line has no recipe library")
        return lib

    def active_sha(lib: RecipeLibrary) -> str:
        hist = lib.history(1)
        return hist[-1].sha256 if hist else ""

    def note(text: str | None) -> str:
        return "" if text is None else f" ({text})"

    @router.get(
        "/recipes",
        response_model=RecipeList,
        responses={**AUTH_RESPONSES, 503: {"description": "no recipe library"}},
        dependencies=[Depends(require("maintenance"))],
    )
    def list_recipes() -> RecipeList:
        lib = library()
        sha = active_sha(lib)
        info = line.recipe_info()
        return RecipeList(
            active=f"{info['name']} v{info['version']}",
            recipes=[_summary(e, sha) for e in lib.entries()],
        )

    @router.get(
        "/recipes/history",
        response_model=list[ActivationView],
        responses={**AUTH_RESPONSES, 503: {"description": "no recipe library"}},
        dependencies=[Depends(require("maintenance"))],
    )
    def history(limit: Annotated[int, Query(ge=1, le=10_000)] = 200) -> list[ActivationView]:
        """The most recent activations, oldest first."""
        return [ActivationView(**vars(a)) for a in library().history(limit)]

    @router.post(
        "/recipes/validate",
        response_model=Validated,
        responses={**AUTH_RESPONSES, **_BODY, **_REFUSED, 503: {"description": "no library"}},
    )
    def validate(
        request: Request,
        req: RecipeText,
        who: Annotated[Principal, Depends(require("engineer"))],
    ) -> Validated:
        """Check a recipe against the model's classes; nothing is stored."""
        lib = library()
        try:
            spec, recipe = lib.validate(req.toml, f"recipe sent by {who.name}")
        except (InputFileError, ValueError) as exc:
            raise HTTPException(422, detail=str(exc)) from None
        try:
            held = lib.get(spec.name, spec.version).text == req.toml
        except UnknownRecipeError:
            held = False
        parsed = ParsedRecipe(file=spec.model_dump(mode="json"), **bound_view(recipe))
        return Validated(
            valid=True, name=spec.name, version=spec.version, parsed=parsed, stored=held
        )

    @router.post(
        "/recipes",
        response_model=Uploaded,
        responses={
            **AUTH_RESPONSES, **_BODY, **_REFUSED,
            409: {"description": "this name and version hold another text: raise version"},
            503: {"description": "no recipe library, or its folder cannot be written"},
        },
    )  # fmt: skip
    def upload(
        request: Request,
        req: RecipeText,
        who: Annotated[Principal, Depends(require("engineer"))],
    ) -> Uploaded:
        """Store a recipe in the library (not activated)."""
        lib = library()
        try:
            entry, new = lib.upload(req.toml, who.name)
        except (InputFileError, ValueError) as exc:
            status = 409 if isinstance(exc, RecipeConflictError) else 422
            record(request, who, status, f"recipe refused: {exc}{note(req.note)}")
            raise HTTPException(status, detail=str(exc)) from None
        except OSError as exc:  # a full disk, a read-only folder: say which
            detail = f"recipe library {lib.folder}: cannot store ({exc.strerror or exc})"
            record(request, who, 503, detail)
            raise HTTPException(503, detail=detail) from None
        record(request, who, 200, f"recipe {entry.ref} uploaded{note(req.note)}")
        return Uploaded(**_summary(entry, active_sha(lib)).model_dump(), new=new)

    @router.get(
        "/recipes/{name}",
        response_model=RecipeShown,
        responses={**AUTH_RESPONSES, 404: {"description": "no such recipe or version"}},
        dependencies=[Depends(require("maintenance"))],
    )
    def show(
        name: Annotated[str, Path(pattern=_NAME)],
        version: Annotated[int | None, Query(ge=1, le=2**31)] = None,
    ) -> RecipeShown:
        """A recipe's TOML and what it means (its highest version unless ``version``)."""
        lib = library()
        try:
            entry = lib.get(name, version)
        except UnknownRecipeError as exc:
            raise HTTPException(404, detail=str(exc)) from None
        parsed = ParsedRecipe(**entry_view(entry, lib.class_names))
        summary = _summary(entry, active_sha(lib))
        return RecipeShown(**summary.model_dump(), toml=entry.text, parsed=parsed)

    @router.post(
        "/recipes/{name}/activate",
        response_model=Activated,
        responses={
            **AUTH_RESPONSES, **_BODY,
            404: {"description": "no such recipe or version"},
            422: {"description": "the held recipe no longer fits the model's classes"},
            503: {"description": "no recipe library"},
        },
    )  # fmt: skip
    def activate(
        request: Request,
        name: Annotated[str, Path(pattern=_NAME)],
        who: Annotated[Principal, Depends(require("operator"))],
        req: Annotated[ActivateRequest | None, Body()] = None,
    ) -> Activated:
        """Switch the running line to recipe ``name`` (while it runs)."""
        lib = library()
        req = req or ActivateRequest()
        try:
            entry = lib.get(name, req.version)
        except UnknownRecipeError as exc:
            record(request, who, 404, str(exc))
            raise HTTPException(404, detail=str(exc)) from None
        try:
            line.switch_recipe(
                entry.text, who=who.name, via="POST /recipes/{name}/activate", note=req.note or ""
            )
        except (InputFileError, ValueError) as exc:
            record(request, who, 422, f"recipe {entry.ref} refused: {exc}")
            raise HTTPException(422, detail=str(exc)) from None
        record(request, who, 200, f"recipe {entry.ref} activated{note(req.note)}")
        act = lib.history(1)[-1]
        return Activated(activation=ActivationView(**vars(act)), recipe=_summary(entry, act.sha256))

    return router
