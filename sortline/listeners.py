"""What hangs off the frame loop (python-can's ``Notifier`` model): the loop
hands each cycle to every listener attached to it and knows none of them.

``on_cycle`` runs on the real-time thread and must only hand over (a bounded
queue, a counter); the work happens on the listener's own thread
(``core.writer.BoundedWriter``), which drops and counts rather than blocks.

- ``RecordsListener``: sort records (``sortline.records``);
- ``ScoreListener``: purity and recovery from a virtual plant's ground truth,
  in this process (``PlantRunner.score``) or from the plant process's score
  endpoint (``HttpScore``); the controller code is the same either way;
- ``LabellingListener``: the capped folder of fragments the classifier was
  unsure of (``vision.labelling.UncertainFolder``).
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from control.recipe import Recipe
from core.frame import Frame
from core.types import Detections, Pulses, Tracks, TrackState
from core.writer import BoundedWriter
from plc.regmap import PackMLState
from sortline.records import Context, Offer, Records
from sortline.status import Quality

__all__ = [
    "Cycle",
    "HttpScore",
    "LabellingListener",
    "Listener",
    "RecordsListener",
    "ScoreListener",
    "ScoreSource",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Cycle:
    """One processed frame: its detections, the tracks after it, the pulses
    handed to the bridge (empty unless the line executes), the state, and the
    frame's latency (arrival to pulses handed over, ms)."""

    frame: Frame
    detections: Detections
    tracks: Tracks
    pulses: Pulses
    state: PackMLState
    t_unix_s: float
    latency_ms: float


class Listener(Protocol):
    def on_cycle(self, cycle: Cycle) -> None: ...

    def close(self) -> None: ...


class RecordsListener:
    """Hands each cycle with a decided track or a pulse to the records writer
    (one ``put_nowait``, no copy); ``context`` names the recipe, model and
    calibration deciding now (a few attribute reads)."""

    def __init__(self, records: Records, context: Callable[[], tuple[Recipe, Context]]) -> None:
        self.records = records
        self.context = context

    def on_cycle(self, cycle: Cycle) -> None:
        tr = cycle.tracks
        if not len(cycle.pulses) and not (tr.state == TrackState.DECIDED).any():
            return
        recipe, ctx = self.context()
        f = cycle.frame
        self.records.writer.offer(
            Offer(cycle.t_unix_s, f.frame_id, f.tick, tr, cycle.pulses, recipe, ctx)
        )

    def close(self) -> None:
        self.records.close()


class ScoreSource(Protocol):
    """A virtual plant's ground truth: the score of a recipe's targets
    (``sim.plant.score.Score.to_dict()``)."""

    def score(self, targets: Mapping[str, str]) -> dict[str, Any]: ...


class HttpScore:
    """The score endpoint of ``sortline sim plant`` (``POST <url>/score``; the
    URL it prints, ending in ``/score``, is taken as well)."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/").removesuffix("/score")
        self.timeout_s = timeout_s

    def score(self, targets: Mapping[str, str]) -> dict[str, Any]:
        body = json.dumps({"targets": dict(targets)}).encode()
        req = urllib.request.Request(
            self.url + "/score", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                data = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ConnectionError(f"plant score endpoint {self.url}: {exc}") from None
        if not isinstance(data, dict):
            raise ConnectionError(f"plant score endpoint {self.url}: not a JSON object")
        return data


def quality_of(score: Mapping[str, Any], source: str) -> Quality:
    return Quality(
        purity=score.get("purity"),
        recovery=score.get("recovery"),
        co_ejection_rate=score.get("co_ejection_rate"),
        objects_ejected=score.get("objects_ejected"),
        source=source,
    )


class ScoreListener:
    """Asks the plant for the score every ``every_frames`` frames, off the loop."""

    def __init__(
        self,
        source: ScoreSource,
        targets: Callable[[], Mapping[str, str]],
        name: str,
        every_frames: int = 50,
    ) -> None:
        self.source = source
        self.targets = targets
        self.name = name
        self.every_frames = every_frames
        self.latest = Quality(source=name)
        self._frames = 0
        self._writer: BoundedWriter[float] = BoundedWriter("plant-score", self._ask, 1)

    def on_cycle(self, cycle: Cycle) -> None:
        self._frames += 1
        if self._frames % self.every_frames == 0:
            self._writer.offer(time.monotonic())

    def _ask(self, _: float) -> None:
        try:
            self.latest = quality_of(self.source.score(self.targets()), self.name)
        except (ConnectionError, OSError, ValueError) as exc:
            self.latest = self.latest.model_copy(update={"error": str(exc)})

    def final(self) -> dict[str, Any] | None:
        """The full score now (blocking; for the run report), None if unreachable."""
        try:
            score = self.source.score(self.targets())
        except (ConnectionError, OSError, ValueError) as exc:
            self.latest = Quality(source=self.name, error=str(exc))
            return None
        self.latest = quality_of(score, self.name)
        return score

    def close(self) -> None:
        self._writer.close()


class LabellingListener:
    """Fragments below ``below`` confidence go to an ``UncertainFolder``."""

    def __init__(self, folder: Any, class_names: tuple[str, ...], below: float) -> None:
        self.folder = folder
        self.class_names = class_names
        self.below = below

    def on_cycle(self, cycle: Cycle) -> None:
        dets = cycle.detections
        if len(dets):
            unsure = dets[dets.confidence < self.below]
            if len(unsure):
                self.folder.offer(cycle.frame, unsure, None, self.class_names)

    def close(self) -> None:
        self.folder.close()
