"""Scoring a run of the virtual plant against its ground truth.

Only fragments that have fully crossed the valve line (and travelled
``decide_after_mm`` beyond it) are scored; fragments still upstream or in
flight are counted as ``in_flight`` and otherwise ignored.

Definitions (``targets`` maps class -> fraction; other classes -> ``pass``):
- purity of fraction F: fragments in bin F whose class targets F / all in bin F.
- recovery of F: fragments targeting F that reached bin F / all targeting F.
- co-ejected: a fragment in a bin other than ``pass`` and other than its own
  target whose air was meant for a neighbour: it was not the best match
  (overlap / union of footprint and air rectangle) of any run that hit it.
  A fragment that a run was meant for but did not belong there is a
  ``false_eject`` (a vision or decision error).
- co-ejection rate of F: co-ejected fragments in bin F / all in bin F; of a
  class: its co-ejected fragments / all of it that crossed.
- a fragment targeting F that did not reach bin F is ``missed`` (no air
  touched it), ``late`` / ``early`` (air covered mostly its trailing /
  leading part), ``partial`` (air over the middle but too little of its
  width or length) or ``tumbled`` (covered enough, fell back anyway); per
  fraction these are counted under its target F.
- air use: valve-open time summed over valves (valve-ms) of the valve bar,
  per fragment that ended in a non-``pass`` bin; per fraction and class, the
  air of the runs meant for (best matching) its fragments, per ejected one.
The overall ``purity``/``recovery``/``co_ejection_rate`` pool every fraction
except ``pass``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.classes import DEFAULT_CLASSES
from sim.plant.truth import FragmentRecord, RunRecord

__all__ = [
    "DEFAULT_TARGETS",
    "PASS",
    "GroupScore",
    "Score",
    "Scorer",
    "fragment_outcomes",
    "score_fragments",
]

PASS = "pass"
DEFAULT_TARGETS: Mapping[str, str] = {"copper": "eject", "brass": "eject", "battery": "eject"}
_FAILURES = ("missed", "late", "early", "partial", "tumbled")


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
    tumbled: int
    air_valve_ms: float  # valve-open time of the runs meant for its fragments
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
    tumbled: int
    air_valve_ms: float
    valve_ms_per_ejected: float | None
    fractions: dict[str, GroupScore]
    classes: dict[str, GroupScore]
    confusion: dict[str, dict[str, int]]  # class -> bin -> count
    targets: dict[str, str]
    forgotten: int = 0  # fragments dropped from memory before this recipe was scored

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["fractions"] = {k: v.to_dict() for k, v in self.fractions.items()}
        d["classes"] = {k: v.to_dict() for k, v in self.classes.items()}
        d["objects_targeted"] = self.targeted  # DESIGN.md report names
        d["objects_ejected"] = self.ejected
        return d


def failure(r: FragmentRecord) -> str:
    """Why a targeted fragment missed its bin (see module docstring)."""
    if r.tumbled:
        return "tumbled"
    if not r.run_hits or r.hit_u_centre is None:
        return "missed"
    if r.hit_u_centre > 0.6:
        return "late"
    if r.hit_u_centre < 0.4:
        return "early"
    return "partial"


@dataclasses.dataclass(slots=True)
class Tally:
    """Counters over scored fragments; ``add`` one, ``merged`` two, ``score`` at the end."""

    n: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)  # (kind, key)
    correct: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    co: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    false: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    targeting: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    fails: Counter[tuple[str, str, str]] = dataclasses.field(default_factory=Counter)
    confusion: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    ejected: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    air: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)

    def add(self, r: FragmentRecord, target: str, tag: str, air_ms: float) -> None:
        """``tag``: ``co``, ``false`` or ``ok``; ``air_ms``: valve-ms of the runs
        meant for ``r`` (it was their best match)."""
        b, c = str(r.bin), r.class_name
        keys = [("bin", b), ("class", c)] + ([("out", "*")] if b != PASS else [])
        for k in keys:
            self.n[k] += 1
            self.co[k] += tag == "co"
            self.false[k] += tag == "false"
            self.air[k] = self.air.get(k, 0.0) + air_ms
            self.ejected[k] += b != PASS
        self.correct[("bin", b)] += b == target
        self.correct[("out", "*")] += b != PASS and b == target
        self.confusion[(c, b)] += 1
        if target != PASS:
            for k in (("class", c), ("target", target), ("all", "*")):
                self.targeting[k] += 1
                self.correct[k] += b == target
            if b != target:
                why = failure(r)
                for k2 in (("class", c), ("target", target), ("all", "*")):
                    self.fails[(*k2, why)] += 1

    def merged(self, other: Tally) -> Tally:
        out = Tally()
        for f in dataclasses.fields(self):
            total = getattr(out, f.name)
            for part in (getattr(self, f.name), getattr(other, f.name)):
                for key, value in part.items():
                    total[key] = total.get(key, 0) + value
        return out

    def _group(self, kind: str, key: str, target_kind: str) -> GroupScore:
        k, n = (kind, key), self.n[(kind, key)]
        tk = (target_kind, key)
        return GroupScore(
            n=n,
            purity=_ratio(self.correct[k], n) if kind == "bin" else None,
            recovery=_ratio(self.correct[tk], self.targeting[tk]),
            co_ejection_rate=_ratio(self.co[k], n),
            co_ejected=self.co[k],
            false_ejects=self.false[k],
            **{w: self.fails[(*tk, w)] for w in _FAILURES},
            air_valve_ms=round(self.air.get(k, 0.0), 3),
            valve_ms_per_ejected=(
                round(self.air.get(k, 0.0) / self.ejected[k], 3)
                if self.ejected[k] and self.air.get(k)
                else None
            ),
        )

    def score(self, targets: dict[str, str], in_flight: int, air_valve_ms: float) -> Score:
        bins = sorted({PASS, *targets.values(), *(b for kind, b in self.n if kind == "bin")})
        out = ("out", "*")
        n_out = self.n[out]
        return Score(
            purity=_ratio(self.correct[out], n_out),
            recovery=_ratio(self.correct[("all", "*")], self.targeting[("all", "*")]),
            co_ejection_rate=_ratio(self.co[out], n_out),
            crossed=sum(v for (kind, _), v in self.n.items() if kind == "bin"),
            in_flight=in_flight,
            targeted=self.targeting[("all", "*")],
            ejected=n_out,
            co_ejected=self.co[out],
            false_ejects=self.false[out],
            **{w: self.fails[("all", "*", w)] for w in _FAILURES},
            air_valve_ms=round(air_valve_ms, 3),  # sums of floats: rounded to a microsecond
            valve_ms_per_ejected=round(air_valve_ms / n_out, 3) if n_out and air_valve_ms else None,
            fractions={b: self._group("bin", b, "target") for b in bins},
            classes={c: self._group("class", c, "class") for c in DEFAULT_CLASSES},
            confusion={
                c: {b: v for (cc, b), v in sorted(self.confusion.items()) if cc == c}
                for c in DEFAULT_CLASSES
            },
            targets=targets,
        )


def _check_targets(targets: Mapping[str, str] | None) -> dict[str, str]:
    tg = dict(DEFAULT_TARGETS if targets is None else targets)
    for cls_name in tg:
        if cls_name not in DEFAULT_CLASSES:
            raise ValueError(f"targets: unknown class {cls_name!r}")
    return tg


def _best_matches(records: Iterable[FragmentRecord], best: dict[int, tuple[float, int]]) -> None:
    """Update run id -> (best overlap / union, fragment id) with ``records``."""
    for r in records:
        for run_id, share in (r.run_match or r.run_hits).items():
            if run_id not in best or share > best[run_id][0]:
                best[run_id] = (share, r.fragment_id)


def _fragment_air(
    r: FragmentRecord, best: dict[int, tuple[float, int]], runs: Sequence[RunRecord]
) -> float:
    """Valve-ms of the valve-bar runs whose best match ``r`` is."""
    return float(
        sum(
            runs[k].valve_ms
            for k in (r.run_match or r.run_hits)
            if k < len(runs)
            and runs[k].actuator == 0
            and best.get(k, (0.0, -1))[1] == r.fragment_id
        )
    )


def _intended(r: FragmentRecord, best: dict[int, tuple[float, int]]) -> bool:
    """Was ``r`` the best match of any run that hit it?"""
    return any(best.get(k, (0.0, -1))[1] == r.fragment_id for k in (r.run_match or r.run_hits))


def _tag(r: FragmentRecord, target: str, best: dict[int, tuple[float, int]]) -> str:
    if r.bin in (PASS, target):
        return "ok"
    return "false" if _intended(r, best) else "co"


def _air(runs: Sequence[RunRecord]) -> float:
    return float(sum(run.valve_ms for run in runs if run.actuator == 0))


def score_fragments(
    records: Sequence[FragmentRecord],
    runs: Sequence[RunRecord],
    targets: Mapping[str, str] | None = None,
) -> Score:
    """Score the crossed fragments of ``records`` (see module docstring)."""
    tg = _check_targets(targets)
    crossed = [r for r in records if r.bin is not None]
    best: dict[int, tuple[float, int]] = {}
    _best_matches(crossed, best)
    tally = Tally()
    for r in crossed:
        target = tg.get(r.class_name, PASS)
        tally.add(r, target, _tag(r, target, best), _fragment_air(r, best, runs))
    return tally.score(tg, len(records) - len(crossed), _air(runs))


class Scorer:
    """``score_fragments`` over a growing run, in time independent of its length.

    ``settled(rec, travel_mm)`` is told each fragment as it is settled. A
    fragment settled more than ``final_after_mm`` of travel ago can no longer
    change its tag (no run that hit it can still hit a later fragment), so it
    is tallied once per recipe and kept; recent ones are re-tallied per call.
    ``forget(n, travel_mm)`` drops the oldest final fragments from memory
    after tallying them for every recipe scored so far; a recipe first scored
    later does not see them (``Score.forgotten`` counts them).
    """

    def __init__(self, final_after_mm: float) -> None:
        self.final_after_mm = final_after_mm
        self._settled: list[tuple[float, FragmentRecord]] = []
        self._best: dict[int, tuple[float, int]] = {}
        self._air_runs, self._air_ms = 0, 0.0
        self._final: dict[tuple[tuple[str, str], ...], tuple[int, Tally, int]] = {}
        self._forgotten = 0

    def settled(self, rec: FragmentRecord, travel_mm: float) -> None:
        self._settled.append((travel_mm, rec))
        _best_matches([rec], self._best)

    def _finalise(
        self, key: tuple[tuple[str, str], ...], runs: Sequence[RunRecord], upto: int
    ) -> tuple[int, Tally, int]:
        done, tally, missing = self._final.get(key, (0, Tally(), self._forgotten))
        tg = dict(key)
        while done < upto:
            r = self._settled[done][1]
            target = tg.get(r.class_name, PASS)
            tally.add(r, target, _tag(r, target, self._best), _fragment_air(r, self._best, runs))
            done += 1
        self._final[key] = (done, tally, missing)
        return done, tally, missing

    def _n_final(self, travel_mm: float) -> int:
        limit = travel_mm - self.final_after_mm
        lo, hi = 0, len(self._settled)
        while lo < hi:  # settled in order of travel: bisect
            mid = (lo + hi) // 2
            if self._settled[mid][0] < limit:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def score(
        self,
        n_records: int,
        runs: Sequence[RunRecord],
        travel_mm: float,
        targets: Mapping[str, str] | None = None,
    ) -> Score:
        """``n_records``: fragments fed and still in memory (settled or not)."""
        tg = _check_targets(targets)
        done, tally, missing = self._finalise(
            tuple(sorted(tg.items())), runs, self._n_final(travel_mm)
        )
        recent = Tally()
        for _, r in self._settled[done:]:
            target = tg.get(r.class_name, PASS)
            recent.add(r, target, _tag(r, target, self._best), _fragment_air(r, self._best, runs))
        self.count_air(runs)
        out = tally.merged(recent).score(tg, n_records - len(self._settled), self._air_ms)
        return dataclasses.replace(out, forgotten=missing)

    def count_air(self, runs: Sequence[RunRecord]) -> None:
        """Add the air of the runs completed since the last count (before they
        may be forgotten)."""
        self._air_ms += _air(runs[self._air_runs :])
        self._air_runs = len(runs)

    def forget(self, n: int, runs: Sequence[RunRecord], travel_mm: float) -> set[int]:
        """Drop up to ``n`` of the oldest final fragments; returns their ids."""
        n = min(n, self._n_final(travel_mm))
        if n <= 0:
            return set()
        for key in list(self._final):
            done, tally, missing = self._finalise(key, runs, max(n, self._final[key][0]))
            self._final[key] = (done - n, tally, missing)
        dropped = [r for _, r in self._settled[:n]]
        ids = {r.fragment_id for r in dropped}
        for r in dropped:
            for k in r.run_match or r.run_hits:
                if self._best.get(k, (0.0, -1))[1] in ids:
                    del self._best[k]
        del self._settled[:n]
        self._forgotten += n
        return ids


def fragment_outcomes(
    records: Sequence[FragmentRecord],
    runs: Sequence[RunRecord],
    targets: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Per fragment: its ground truth plus ``target`` fraction, ``outcome``
    (``ok``, ``co_ejected``, ``false_eject``, ``missed``, ``late``, ``early``,
    ``partial``, ``tumbled`` or ``in_flight``) and ``tracks``: the controller track ids of
    the runs that hit it."""
    tg = _check_targets(targets)
    best: dict[int, tuple[float, int]] = {}
    _best_matches((r for r in records if r.bin is not None), best)
    out = []
    for r in records:
        target = tg.get(r.class_name, PASS)
        if r.bin is None:
            outcome = "in_flight"
        elif r.bin == PASS and target != PASS:
            outcome = failure(r)
        else:
            outcome = {"co": "co_ejected", "false": "false_eject"}.get(_tag(r, target, best), "ok")
        d = r.to_dict()
        d.update(
            target=target,
            outcome=outcome,
            tracks=sorted({runs[k].track_id for k in r.run_hits if k < len(runs)}),
        )
        out.append(d)
    return out
