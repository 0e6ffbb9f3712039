"""Which pulses the PLC acknowledged, from the PLC bridge's counters alone."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from sortline.records.decisions import ACKED, UNKNOWN

__all__ = ["AckWindows"]


class AckWindows:
    """Which pulses the PLC acknowledged, from the bridge's counters alone.

    The bridge reports pulse fates as counters: ``submitted``, ``resolved``
    (acked + refused, late, dropped) and ``failed`` (resolved but not acked).
    The loop submits a cycle's pulses, then hands the cycle over, so the
    writer numbers pulses as the bridge does (as long as no cycle was dropped
    on the way: then it stops judging). Each look at the counters closes a
    window of decisions (pulses k_lo < k <= k_hi). With no failure, the bridge
    settles pulses in order, so once ``resolved >= k_hi`` they were all
    acknowledged if ``failed`` did not move since a look taken before the
    first of them was submitted; else one of the failures may be theirs and
    they are ``unknown``."""

    def __init__(self, first: tuple[int, int, int] = (0, 0, 0)) -> None:
        self.k = first[0]  # pulses numbered so far (the bridge's submitted count)
        self.lost = False  # a cycle dropped on the way: numbers no longer match
        self._k_lo = self.k
        self._open: list[int] = []
        self._looks: deque[tuple[int, int]] = deque([(first[0], first[2])])  # submitted, failed
        self._windows: deque[tuple[int, int, list[int]]] = deque()  # k_lo, k_hi, track ids

    def taken(self, n_pulses: int, track_ids: Iterable[int]) -> None:
        self.k += n_pulses
        self._open.extend(track_ids)

    def settle(self, submitted: int, resolved: int, failed: int) -> dict[str, list[int]]:
        """One look at the counters -> {result: track ids} newly settled."""
        if self.lost or submitted < self.k:  # dropped cycles, or a new bridge
            self.lost = True
            return {}
        if self._open:
            self._windows.append((self._k_lo, self.k, self._open))
            self._open = []
        self._k_lo = self.k
        self._looks.append((submitted, failed))
        out: dict[str, list[int]] = {ACKED: [], UNKNOWN: []}
        while self._windows and resolved >= self._windows[0][1]:
            k_lo, _, ids = self._windows.popleft()
            base = [f for sub, f in self._looks if sub <= k_lo]
            out[ACKED if base and failed == base[-1] else UNKNOWN].extend(ids)
        keep_from = self._windows[0][0] if self._windows else self.k
        while len(self._looks) > 1 and self._looks[1][0] <= keep_from:
            self._looks.popleft()
        return {k: v for k, v in out.items() if v}
