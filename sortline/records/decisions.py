"""Sort decisions from the cycles the real-time loop hands over.

A decision is a track seen ``DECIDED`` for the first time (its pulses, if
any, come in the same cycle); pass-through decisions are recorded as well
(fraction = the recipe's pass fraction, ``ejected`` false).

``p_fraction`` of a decision: the probability that the fragment belongs in
the fraction it was sent to, from the track's combined class posterior
(softmax of its mean per-view log probabilities, as the controller computes
it) summed over the classes the recipe sends to that fraction. A fraction's
estimated purity is the mean ``p_fraction`` of its fragments: the expected
share of fragments that belong there if the classifier's probabilities are
calibrated (fragments the camera never saw are outside it).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from control.recipe import Recipe
from core.types import Pulses, Tracks, TrackState
from sortline.records import store as st

__all__ = ["ACKED", "NONE", "NOT_SENT", "SENT", "UNKNOWN", "Offer", "decisions_of"]

# pulse_result of a decision
SENT = "sent"  # handed to the PLC bridge, its fate not known yet
ACKED = "acked"  # the PLC acknowledged it (every pulse of its window was acknowledged)
UNKNOWN = "unknown"  # some pulse of its window was refused or dropped (counters only)
NOT_SENT = "not_sent"  # decided for an ejection fraction, no pulse (deadline, off the bar)
NONE = "none"  # the pass fraction: no pulse needed

# decided track ids remembered (ids only grow): a decided track stays in the
# loop's tracks until it has crossed the valve line (under a second at belt
# speed), so 20,000 ids cover 10 s at 2,000 decisions/s; 100,000 cost the
# soak's line ~16 MB of RSS that looked like a leak while it filled
_SEEN_KEPT = 20_000


@dataclass(frozen=True, slots=True)
class Offer:
    """One cycle as the real-time loop hands it over (references, no copies)."""

    t_unix_s: float
    frame_id: int
    tick: int
    tracks: Tracks
    pulses: Pulses
    recipe: Recipe
    context: st.Context


def _posterior(evidence: np.ndarray, n_views: np.ndarray) -> np.ndarray:
    """(M, K) summed log probabilities, (M,) views -> (M, K) normalised posterior."""
    logits = evidence.astype(np.float64) / np.maximum(n_views, 1)[:, None]
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def decisions_of(
    o: Offer, class_names: tuple[str, ...], line: str, boot: str, seen: OrderedDict[int, None]
) -> list[st.DecisionRow]:
    """The decisions in one cycle: tracks ``DECIDED`` and not in ``seen`` (updated),
    with their pulses; a pulse whose track is gone is a decision of class unknown."""
    tr, pu, rec = o.tracks, o.pulses, o.recipe
    rows_idx = np.flatnonzero(tr.state == TrackState.DECIDED)
    ids = tr.track_id[rows_idx].tolist()
    new = [(i, t) for i, t in zip(rows_idx.tolist(), ids, strict=True) if t not in seen]
    pulse_of: dict[int, list[int]] = {}
    for j, t in enumerate(pu.track_id.tolist()):
        pulse_of.setdefault(int(t), []).append(j)
    in_tracks = set(tr.track_id.tolist())
    orphans = [t for t in pulse_of if t not in in_tracks and t not in seen]
    if not new and not orphans:
        return []
    idx = np.array([i for i, _ in new], np.int64)
    k = len(rec.class_fraction)
    post = None
    if len(idx) and tr.class_evidence.shape[1] == k:
        post = _posterior(tr.class_evidence[idx], tr.n_views[idx])
    out: list[st.DecisionRow] = []
    cf = rec.class_fraction
    for q, (i, t) in enumerate(new):
        c, f = int(tr.class_id[i]), int(tr.fraction[i])
        p_frac = None
        if post is not None and tr.n_views[i] > 0:
            p_frac = round(float(post[q][cf == f].sum()), 6)
        out.append(
            _row(o, line, boot, t, class_names[c] if 0 <= c < len(class_names) else "unknown",
                 round(float(tr.class_prob[i]), 6) if c >= 0 else None,
                 _fraction(rec, f), p_frac, pulse_of.get(t))
        )  # fmt: skip
        seen[t] = None
    for t in orphans:
        js = pulse_of[t]
        out.append(_row(o, line, boot, t, "unknown", None, _fraction(rec, int(pu.fraction[js[0]])),
                        None, js))  # fmt: skip
        seen[t] = None
    while len(seen) > _SEEN_KEPT:
        seen.popitem(last=False)
    return out


def _fraction(rec: Recipe, f: int) -> str:
    return rec.fraction_names[f] if 0 <= f < len(rec.fraction_names) else rec.pass_fraction


def _row(
    o: Offer, line: str, boot: str, track_id: int, cls: str, prob: float | None, fraction: str,
    p_frac: float | None, js: list[int] | None,
) -> st.DecisionRow:  # fmt: skip
    pu = o.pulses
    ej = js is not None
    j, k = (js[0], js[-1]) if js else (0, 0)
    return st.DecisionRow(
        line=line, boot=boot, track_id=int(track_id), frame_id=int(o.frame_id),
        t_unix_s=o.t_unix_s, tick=int(o.tick), cls=cls, class_prob=prob, fraction=fraction,
        p_fraction=p_frac, ejected=ej,
        actuator=int(pu.actuator[j]) if ej else None,
        first_valve=int(pu.first_valve[js].min()) if js else None,
        last_valve=int(pu.last_valve[js].max()) if js else None,
        on_tick=int(pu.on_tick[j]) if ej else None,
        off_tick=int(pu.off_tick[k]) if ej else None,
        pulses=len(js) if js else 0,
        pulse_result=SENT if ej else (NONE if fraction == o.recipe.pass_fraction else NOT_SENT),
        context=o.context,
    )  # fmt: skip
