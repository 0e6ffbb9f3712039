"""``Scenario``: what the virtual plant feeds onto the belt and how it looks.

A scenario is data (TOML, validated strictly). Belt, camera and valve geometry
come from the line config (``LineGeometry``); a scenario only overrides the
belt speed. Named presets live in ``sim/plant/scenarios/NAME.toml``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.classes import DEFAULT_CLASSES
from core.errors import InputFileError, load_toml_model, model_from_data, parse_toml

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

__all__ = [
    "AppearanceSection",
    "EjectionSection",
    "FeedSection",
    "MotionSection",
    "Scenario",
    "load_scenario",
    "preset_names",
]


class FeedSection(BaseModel):
    """What arrives on the belt: rate, mix, sizes, crowding."""

    model_config = _STRICT

    rate_obj_s: float = Field(default=20.0, ge=0, le=2000, description="mean fragments per second")
    class_mix: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(DEFAULT_CLASSES, 1.0),
        description="class name -> relative weight",
    )
    size_min_mm: float = Field(default=10.0, ge=5, le=150)
    size_max_mm: float = Field(default=150.0, ge=5, le=300)
    size_median_mm: float = Field(default=45.0, ge=5, le=300, description="log-normal median")
    density: float = Field(
        default=0.15, ge=0, le=1, description="share of fragments fed touching a recent neighbour"
    )
    overlap: float = Field(
        default=0.3, ge=0, le=1, description="of those, share that partly overlap (lie on top)"
    )
    margin_mm: float = Field(
        default=30.0, ge=0, le=400, description="no feed this close to belt edges"
    )

    @field_validator("class_mix")
    @classmethod
    def _known_classes(cls, mix: dict[str, float]) -> dict[str, float]:
        for name, weight in mix.items():
            if name not in DEFAULT_CLASSES:
                raise ValueError(f"unknown class {name!r}; known: {', '.join(DEFAULT_CLASSES)}")
            if not weight >= 0:
                raise ValueError(f"weight of {name!r} must be >= 0")
        if not any(w > 0 for w in mix.values()):
            raise ValueError("at least one class needs a weight > 0")
        return mix

    @model_validator(mode="after")
    def _sizes(self) -> FeedSection:
        if not self.size_min_mm <= self.size_median_mm <= self.size_max_mm:
            raise ValueError("need size_min_mm <= size_median_mm <= size_max_mm")
        return self


class MotionSection(BaseModel):
    """Belt speed and how fragments move relative to it."""

    model_config = _STRICT

    speed_mm_s: float | None = Field(
        default=None, gt=0, le=10000, description="belt speed; None = the line config's"
    )
    encoder_start: int = Field(
        default=0, ge=0, lt=2**32, description="encoder count when the plant starts"
    )
    speed_fluct_frac: float = Field(
        default=0.02, ge=0, le=0.3, description="slow speed swing, +-share"
    )
    speed_fluct_period_s: float = Field(default=3.0, gt=0, le=600)
    drift_mm_s: float = Field(
        default=60.0, ge=0, le=2000, description="sigma of sideways drift at feed"
    )
    slide_mm_s: float = Field(
        default=80.0, ge=0, le=2000, description="sigma of slip along the belt at feed"
    )
    settle_s: float = Field(default=0.12, gt=0, le=10, description="time constant of spin")
    spin_deg_s: float = Field(default=60.0, ge=0, le=3600, description="sigma of spin at feed")
    roll_share: float = Field(default=0.5, ge=0, le=1, description="share of round parts that roll")
    roll_speed_min_frac: float = Field(
        default=0.05, ge=0, le=1, description="least mismatch of a roller, share of belt speed"
    )
    roll_speed_max_frac: float = Field(
        default=0.20, ge=0, le=1, description="largest mismatch of a roller, share of belt speed"
    )
    slide_share: float = Field(
        default=0.08, ge=0, le=1, description="share of flat parts still sliding into the view"
    )
    slide_time_max_s: float = Field(
        default=0.4, gt=0, le=10, description="a slider comes to rest at most this long after feed"
    )
    bounce_share: float = Field(
        default=0.02, ge=0, le=1, description="share that bounce at the valves"
    )
    bounce_mm_s: float = Field(default=400.0, ge=0, le=5000, description="sigma of a bounce's kick")

    @model_validator(mode="after")
    def _roll_speeds(self) -> MotionSection:
        if self.roll_speed_min_frac > self.roll_speed_max_frac:
            raise ValueError("need roll_speed_min_frac <= roll_speed_max_frac")
        return self


class AppearanceSection(BaseModel):
    """Camera and scene appearance."""

    model_config = _STRICT

    exposure_us: float = Field(
        default=300.0, gt=0, le=20000, description="motion blur = speed x this"
    )
    noise_sigma: float = Field(default=3.0, ge=0, le=40, description="sensor noise, grey levels")
    light_across_frac: float = Field(
        default=0.12, ge=0, le=0.6, description="fall-off at belt edges"
    )
    light_drift_frac: float = Field(default=0.04, ge=0, le=0.5, description="slow brightness swing")
    lens_dirt: float = Field(
        default=0.0, ge=0, le=1, description="smudges on the lens, fixed in the image"
    )
    flicker_frac: float = Field(
        default=0.005, ge=0, le=0.2, description="frame-to-frame brightness jitter"
    )
    light_drift_period_s: float = Field(default=7.0, gt=0, le=3600)
    belt_wear: float = Field(default=0.4, ge=0, le=1, description="stains and scuffs on the belt")
    dirt: float = Field(default=0.3, ge=0, le=1, description="dust and grime on fragments")
    oxidation: float = Field(default=0.3, ge=0, le=1, description="tarnish on metals")
    shadow: float = Field(default=0.35, ge=0, le=1, description="darkness of cast shadows")


class EjectionSection(BaseModel):
    """When air makes a fragment leave the belt."""

    model_config = _STRICT

    cover_width_frac: float = Field(default=0.5, gt=0, le=1, description="share of width under air")
    cover_length_frac: float = Field(
        default=0.5, gt=0, le=1, description="share of length under air"
    )
    grid_mm: float = Field(
        default=2.0, gt=0.2, le=20, description="footprint sampling for coverage"
    )
    jet_length_mm: float = Field(
        default=8.0, ge=0, le=100, description="length of one jet's footprint along the belt"
    )
    valve_jitter_ms: float = Field(
        default=0.2, ge=0, le=20, description="sigma of each opening's and closing's timing"
    )
    tumble_share: float = Field(
        default=0.01, ge=0, le=1, description="share of covered fragments that fall back"
    )
    dead_valves: tuple[int, ...] = Field(
        default=(), strict=False, description="valves of the bar that never blow (faults)"
    )
    diverter_dead_ms: float = Field(
        default=40.0, ge=0, le=2000, description="flap switching dead time"
    )
    decide_after_mm: float = Field(
        default=60.0,
        ge=0,
        le=2000,
        description="travel past the valve line before the fate is final",
    )


class Scenario(BaseModel):
    model_config = _STRICT

    name: str = Field("custom", min_length=1, max_length=64)
    description: str = ""
    seed: int = Field(default=1, ge=0, lt=2**63)
    feed: FeedSection = FeedSection()
    motion: MotionSection = MotionSection()
    appearance: AppearanceSection = AppearanceSection()
    ejection: EjectionSection = EjectionSection()


def preset_names() -> list[str]:
    folder = resources.files("sim.plant").joinpath("scenarios")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A named preset (``default``, ``easy``, ...) or a TOML file path.

    Raises ``InputFileError`` naming the file and field on bad input.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, str) and "/" not in text and not text.endswith(".toml"):
        if text not in preset_names():
            raise InputFileError(
                f"scenario {text!r}", f"no such preset; have {', '.join(preset_names())}"
            )
        res = resources.files("sim.plant").joinpath("scenarios", text + ".toml")
        label = f"<preset scenario {text}>"
        return model_from_data(Scenario, parse_toml(res.read_text("utf-8"), label), label)
    return load_toml_model(Scenario, Path(text))
