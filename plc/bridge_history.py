"""What the bridge remembers between reads, as plain data (no I/O, no locks:
``PlcBridge`` holds its lock around every call).

- ``EncoderSamples``: the encoder count of every reply that carried it, with
  the time it was valid and the round trip (free-running cameras interpolate
  a frame's count from these);
- ``TriggerLatches``: the PLC's camera-trigger latches (hardware-triggered
  cameras match frames to these by sequence number);
- ``CommandOutcome``: what became of a PackML command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from plc import regmap as rm

__all__ = ["CommandOutcome", "EncoderSamples", "LatchTracker", "RingColumns", "TriggerLatches"]

SAMPLES_KEPT = 256
LATCHES_KEPT = 512
COMMANDS_KEPT = 32


def _frozen(a: np.ndarray, dtype: type, name: str, n: int | None) -> np.ndarray:
    out: np.ndarray = np.array(a, dtype=dtype, copy=True).reshape(-1)
    if n is not None and out.shape[0] != n:
        raise ValueError(f"{name}: {out.shape[0]} rows, want {n}")
    out.flags.writeable = False
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class EncoderSamples:
    """K encoder readings, oldest first (struct of arrays, read-only).

    t_s: (K,) float64, time.monotonic when the count was valid (midpoint of
    request sent and reply received); tick: (K,) int64 holding uint32 counts;
    rtt_s: (K,) float64 round trip of that request (the count was sampled
    within ``t_s +- rtt_s / 2``).
    """

    t_s: np.ndarray
    tick: np.ndarray
    rtt_s: np.ndarray

    def __post_init__(self) -> None:
        n = np.asarray(self.t_s).reshape(-1).shape[0]
        object.__setattr__(self, "t_s", _frozen(self.t_s, np.float64, "t_s", n))
        object.__setattr__(self, "tick", _frozen(self.tick, np.int64, "tick", n))
        object.__setattr__(self, "rtt_s", _frozen(self.rtt_s, np.float64, "rtt_s", n))

    def __len__(self) -> int:
        return int(self.t_s.shape[0])

    def __getitem__(self, index: np.ndarray | slice) -> EncoderSamples:
        """Rows by boolean mask, index array or slice."""
        return EncoderSamples(t_s=self.t_s[index], tick=self.tick[index], rtt_s=self.rtt_s[index])


@dataclasses.dataclass(frozen=True, slots=True)
class TriggerLatches:
    """K camera-trigger latches, oldest first (struct of arrays, read-only).

    seq: (K,) int64, the PLC's trigger seq unwrapped (monotone; the register
    value is ``(seq - 1) % 65535 + 1``); tick: (K,) int64 holding the uint32
    count latched at the trigger; t_read_s: (K,) float64, time.monotonic when
    the reply that first carried it arrived (the trigger fired before).
    """

    seq: np.ndarray
    tick: np.ndarray
    t_read_s: np.ndarray

    def __post_init__(self) -> None:
        n = np.asarray(self.seq).reshape(-1).shape[0]
        object.__setattr__(self, "seq", _frozen(self.seq, np.int64, "seq", n))
        object.__setattr__(self, "tick", _frozen(self.tick, np.int64, "tick", n))
        object.__setattr__(self, "t_read_s", _frozen(self.t_read_s, np.float64, "t_read_s", n))

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    def __getitem__(self, index: np.ndarray | slice) -> TriggerLatches:
        """Rows by boolean mask, index array or slice."""
        return TriggerLatches(
            seq=self.seq[index], tick=self.tick[index], t_read_s=self.t_read_s[index]
        )


@dataclasses.dataclass(frozen=True, slots=True)
class CommandOutcome:
    """A PackML command's fate. name: ``PackMLCommand`` name; t_unix_s: when
    the fate was known (time.time); result: "taken", "refused: not allowed in
    <STATE>", "refused: E-stop open", "sent" (the PLC does not report command
    results), "dropped: link down" or "error: <exception reply>"."""

    name: str
    t_unix_s: float
    result: str

    def __str__(self) -> str:
        return f"{self.name}: {self.result}"


def command_result_text(result: int, state: int) -> str:
    """IR 93 (with the state read alongside) as ``CommandOutcome.result``."""
    if result == rm.CommandResult.TAKEN:
        return "taken"
    if result == rm.CommandResult.REFUSED_ESTOP:
        return "refused: E-stop open"
    if result == rm.CommandResult.REFUSED_STATE:
        name = rm.PackMLState(state).name if state in rm.PackMLState._value2member_map_ else state
        return f"refused: not allowed in {name}"
    return f"unknown result {result}"


class RingColumns:
    """The last ``capacity`` rows of a few numeric columns (float64 or int64)."""

    def __init__(self, capacity: int, dtypes: Sequence[type]) -> None:
        self.capacity = capacity
        self._cols: list[np.ndarray] = [np.zeros(capacity, dtype=d) for d in dtypes]
        self._n = 0  # rows ever appended

    def __len__(self) -> int:
        return min(self._n, self.capacity)

    def append(self, *row: float) -> None:
        i = self._n % self.capacity
        for col, v in zip(self._cols, row, strict=True):
            col[i] = v
        self._n += 1

    def clear(self) -> None:
        self._n = 0

    def columns(self) -> list[np.ndarray]:
        """Copies, oldest row first."""
        if self._n <= self.capacity:
            return [c[: self._n].copy() for c in self._cols]
        i = self._n % self.capacity
        return [np.concatenate((c[i:], c[:i])) for c in self._cols]


class LatchTracker:
    """Picks the latches not seen before out of each status read (by seq,
    across the wrap) and unwraps their seq; ``reset`` at a PLC restart."""

    def __init__(self) -> None:
        self.ring = RingColumns(LATCHES_KEPT, (np.int64, np.int64, np.float64))
        self.last_seq: int | None = None  # unwrapped
        self.missed = 0  # triggers overwritten in the PLC's ring before a read saw them

    def reset(self) -> None:
        self.ring.clear()
        self.last_seq = None

    def update(self, trigger_seq: int, latch_words: Sequence[int], t_read_s: float) -> int:
        """One status read's IR 43 and IR 44..91; returns how many were new."""
        new = 0
        for seq, tick in rm.unpack_trigger_latch(trigger_seq, latch_words):
            if self.last_seq is None:
                unwrapped = seq
            else:
                step = rm.trigger_seq_diff(seq, (self.last_seq - 1) % rm.TRIGGER_SEQ_PERIOD + 1)
                if step <= 0:
                    continue
                self.missed += step - 1
                unwrapped = self.last_seq + step
            self.ring.append(unwrapped, tick, t_read_s)
            self.last_seq = unwrapped
            new += 1
        return new
