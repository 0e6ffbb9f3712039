"""Scoring a run of the virtual plant against its ground truth.

Only fragments that have fully crossed the valve line (and travelled
``decide_after_mm`` beyond it) are scored; fragments still upstream or in
flight are counted as ``in_flight`` and otherwise ignored.

Definitions (``targets`` maps class -> fraction; other classes -> ``pass``):
- purity of fraction F: fragments in bin F whose class targets F / all in bin F.
- recovery of F: fragments targeting F that reached bin F / all targeting F.
- co-ejected: a fragment in a bin other than ``pass`` and other than its own
  target whose air was meant for a neighbour: it was not the fragment best
  covered by any run that hit it. A fragment that a run was meant for but
  did not belong there is a ``false_eject`` (a vision/decision error).
- co-ejection rate of F: co-ejected fragments in bin F / all in bin F.
- a targeted fragment not in its bin is ``missed`` (no air touched it),
  ``late`` / ``early`` (air covered mostly its trailing / leading part) or
  ``partial`` (air over the middle but too little of width or length).
- air use: valve-open time summed over valves (valve-ms) of the valve bar,
  per fragment that ended in a non-``pass`` bin.
The overall ``purity``/``recovery``/``co_ejection_rate`` pool every fraction
except ``pass``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from core.classes import DEFAULT_CLASSES
from sim.truth import FragmentRecord, RunRecord

__all__ = ["DEFAULT_TARGETS", "PASS", "Score", "score_fragments"]

PASS = "pass"
DEFAULT_TARGETS: Mapping[str, str] = {"copper": "eject", "brass": "eject", "battery": "eject"}


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


@dataclasses.dataclass(frozen=True, slots=True)
class GroupScore:
    """Counts and rates of one fraction (bin) or one class."""

    n: int  # fragments in the bin / of the class that crossed
    purity: float | None
    recovery: float | None
    co_ejection_rate: float | None
    co_ejected: int
    false_ejects: int
    missed: int
    late: int
    early: int
    partial: int
    valve_ms_per_ejected: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Score:
    purity: float | None
    recovery: float | None
    co_ejection_rate: float | None
    crossed: int
    in_flight: int
    targeted: int
    ejected: int
    co_ejected: int
    false_ejects: int
    missed: int
    late: int
    early: int
    partial: int
    air_valve_ms: float
    valve_ms_per_ejected: float | None
    fractions: dict[str, GroupScore]
    classes: dict[str, GroupScore]
    confusion: dict[str, dict[str, int]]  # class -> bin -> count
    targets: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["fractions"] = {k: v.to_dict() for k, v in self.fractions.items()}
        d["classes"] = {k: v.to_dict() for k, v in self.classes.items()}
        d["objects_targeted"] = self.targeted  # DESIGN.md report names
        d["objects_ejected"] = self.ejected
        return d


def _intended(records: Sequence[FragmentRecord]) -> set[int]:
    """Fragment ids that best matched (overlap / union) the air of some run."""
    best: dict[int, tuple[float, int]] = {}
    for r in records:
        for run_id, share in (r.run_match or r.run_hits).items():
            if run_id not in best or share > best[run_id][0]:
                best[run_id] = (share, r.fragment_id)
    return {fid for _, fid in best.values()}


def _failure(r: FragmentRecord) -> str:
    if not r.run_hits or r.hit_u_centre is None:
        return "missed"
    if r.hit_u_centre > 0.6:
        return "late"
    if r.hit_u_centre < 0.4:
        return "early"
    return "partial"


def _group(
    rows: list[tuple[FragmentRecord, str, str]],
    is_bin: bool,
    valve_ms: float,
) -> GroupScore:
    """``rows``: (record, target fraction, tag) with tag co/false/ok."""
    n = len(rows)
    ejected = [r for r, _, _ in rows if r.bin != PASS]
    correct = sum(1 for r, tgt, _ in rows if r.bin == tgt)
    fails = Counter(_failure(r) for r, tgt, _ in rows if tgt != PASS and r.bin != tgt)
    co = sum(1 for _, _, tag in rows if tag == "co")
    false = sum(1 for _, _, tag in rows if tag == "false")
    targeting = [r for r, tgt, _ in rows if tgt != PASS]
    if is_bin:
        purity, recovery = _ratio(correct, n), None
        co_rate = _ratio(co, n)
    else:
        purity = None
        recovery = _ratio(
            sum(1 for r, tgt, _ in rows if tgt != PASS and r.bin == tgt), len(targeting)
        )
        co_rate = _ratio(co, n)
    return GroupScore(
        n=n,
        purity=purity,
        recovery=recovery,
        co_ejection_rate=co_rate,
        co_ejected=co,
        false_ejects=false,
        missed=fails["missed"],
        late=fails["late"],
        early=fails["early"],
        partial=fails["partial"],
        valve_ms_per_ejected=valve_ms / len(ejected) if ejected and valve_ms else None,
    )


def score_fragments(
    records: Sequence[FragmentRecord],
    runs: Sequence[RunRecord],
    targets: Mapping[str, str] | None = None,
) -> Score:
    """Score the crossed fragments of ``records`` (see module docstring)."""
    tg = dict(DEFAULT_TARGETS if targets is None else targets)
    for cls_name in tg:
        if cls_name not in DEFAULT_CLASSES:
            raise ValueError(f"targets: unknown class {cls_name!r}")
    crossed = [r for r in records if r.bin is not None]
    intended = _intended(crossed)
    rows: list[tuple[FragmentRecord, str, str]] = []
    for r in crossed:
        tgt = tg.get(r.class_name, PASS)
        tag = "ok"
        if r.bin not in (PASS, tgt):
            tag = "false" if r.fragment_id in intended else "co"
        rows.append((r, tgt, tag))
    valve_ms = sum(run.valve_ms for run in runs if run.actuator == 0)
    bins = sorted({PASS, *tg.values(), *(r.bin for r, _, _ in rows if r.bin)})
    fractions = {b: _group([x for x in rows if x[0].bin == b], True, 0.0) for b in bins}
    classes = {
        c: _group([x for x in rows if x[0].class_name == c], False, 0.0) for c in DEFAULT_CLASSES
    }
    confusion = {
        c: dict(Counter(str(r.bin) for r, _, _ in rows if r.class_name == c))
        for c in DEFAULT_CLASSES
    }
    out_rows = [x for x in rows if x[0].bin != PASS]
    pooled = _group(out_rows, True, valve_ms)
    targeted = [x for x in rows if x[1] != PASS]
    recovered = sum(1 for r, tgt, _ in targeted if r.bin == tgt)
    fails = Counter(_failure(r) for r, tgt, _ in targeted if r.bin != tgt)
    return Score(
        purity=pooled.purity,
        recovery=_ratio(recovered, len(targeted)),
        co_ejection_rate=pooled.co_ejection_rate,
        crossed=len(crossed),
        in_flight=len(records) - len(crossed),
        targeted=len(targeted),
        ejected=len(out_rows),
        co_ejected=pooled.co_ejected,
        false_ejects=pooled.false_ejects,
        missed=fails["missed"],
        late=fails["late"],
        early=fails["early"],
        partial=fails["partial"],
        air_valve_ms=valve_ms,
        valve_ms_per_ejected=pooled.valve_ms_per_ejected,
        fractions=fractions,
        classes=classes,
        confusion=confusion,
        targets=tg,
    )
