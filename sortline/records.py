"""Sort records: what the line decided to do with each fragment, kept as proof.

One JSON object per line in ``<dir>/<line>-<YYYY-MM-DD>.jsonl`` (UTC date):
every pulse handed to the PLC, with the track's class, probability, output
fraction, valves and encoder ticks. The real-time loop only hands a batch to
a bounded queue (never waits, counts what it had to drop); a writer thread
formats and appends. Each batch is written with one ``write`` on an
``O_APPEND`` descriptor and fsynced, so a crash can at most leave a torn last
line, which ``read_records`` reports and skips.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.types import Pulses, Tracks
from core.writer import BoundedWriter

log = logging.getLogger("sortline.records")


class RecordWriter:
    def __init__(
        self,
        directory: str | Path,
        line_name: str,
        class_names: Sequence[str],
        fraction_names: Sequence[str],
        max_pending: int = 1024,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.line_name = line_name
        self.class_names = tuple(class_names)
        self.fraction_names = tuple(fraction_names)
        self.dropped = 0
        self.written = 0
        self._writer: BoundedWriter[tuple[float, Pulses, Tracks]] = BoundedWriter(
            "records", self._write, max_pending
        )

    def offer(self, pulses: Pulses, tracks: Tracks) -> None:
        """Hand over a cycle's pulses (non-blocking; from the real-time loop)."""
        if len(pulses) and not self._writer.offer((time.time(), pulses, tracks)):
            self.dropped += len(pulses)

    def pending(self) -> int:
        """Batches handed over and not yet written."""
        return self._writer.pending()

    def flush(self, timeout_s: float | None = None) -> bool:
        return self._writer.flush(timeout_s)

    @property
    def last_error(self) -> str:
        return self._writer.last_error

    @property
    def failed(self) -> int:
        """Batches whose write failed (disk full, folder gone, read-only)."""
        return self._writer.failed

    def close(self, timeout_s: float = 5.0) -> None:
        self._writer.close(timeout_s)

    def path_for(self, t_unix_s: float) -> Path:
        day = dt.datetime.fromtimestamp(t_unix_s, tz=dt.UTC).strftime("%Y-%m-%d")
        return self.directory / f"{self.line_name}-{day}.jsonl"

    def _write(self, item: tuple[float, Pulses, Tracks]) -> None:
        try:
            self._append(*item)
        except OSError:
            log.exception("cannot write sort records to %s", self.directory)
            raise

    def rows(self, t_unix_s: float, pulses: Pulses, tracks: Tracks) -> list[dict[str, Any]]:
        index = {int(t): i for i, t in enumerate(tracks.track_id.tolist())}
        rows = []
        for j in range(len(pulses)):
            tid = int(pulses.track_id[j])
            i = index.get(tid)
            cls = int(tracks.class_id[i]) if i is not None else -1
            frac = int(pulses.fraction[j])
            rows.append(
                {
                    "t_unix_s": round(t_unix_s, 4),
                    "line": self.line_name,
                    "track_id": tid,
                    "class": self.class_names[cls] if 0 <= cls < len(self.class_names) else None,
                    "class_prob": None if i is None else round(float(tracks.class_prob[i]), 4),
                    "fraction": self.fraction_names[frac]
                    if 0 <= frac < len(self.fraction_names)
                    else frac,
                    "actuator": int(pulses.actuator[j]),
                    "valves": [int(pulses.first_valve[j]), int(pulses.last_valve[j])],
                    "on_tick": int(pulses.on_tick[j]),
                    "off_tick": int(pulses.off_tick[j]),
                    "x_mm": None if i is None else np.round(tracks.extent_mm[i, :2], 1).tolist(),
                }
            )
        return rows

    def _append(self, t_unix_s: float, pulses: Pulses, tracks: Tracks) -> None:
        rows = self.rows(t_unix_s, pulses, tracks)
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
        fd = os.open(self.path_for(t_unix_s), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.written += len(rows)


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of one file; a torn last line (a crash mid-write) is skipped
    with a warning, a malformed line elsewhere raises ``ValueError`` naming it."""
    lines = Path(path).read_bytes().split(b"\n")
    last = len(lines) - 1
    for n, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            yield json.loads(raw)
        except json.JSONDecodeError as exc:
            if n == last:
                log.warning("%s: torn last record skipped (line %d)", path, n + 1)
                return
            raise ValueError(f"{path}: line {n + 1}: not a JSON record ({exc.msg})") from None
