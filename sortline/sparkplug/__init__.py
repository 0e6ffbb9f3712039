"""Sparkplug B 3.0 over MQTT: the line as an edge node (``node``), its
metrics (``metrics``), the payload schema (``schema``, Eclipse Tahu's
``sparkplug_b.proto`` built with protobuf) and payload helpers (``payload``).

Library: paho-mqtt 2 (Eclipse, maintained, thread-based network loop with
will, TLS and automatic reconnect; the line's threads are not asyncio, so an
asyncio client such as aiomqtt would only add a loop thread). Payloads are
encoded by protobuf from the Tahu schema rather than by a Sparkplug payload
library: the Python ones are small and young (pysparkplug 0.6) or
unmaintained (Tahu's own Python client is not on PyPI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sortline.sparkplug.metrics import LineReading
from sortline.sparkplug.node import SparkplugNode, parse_broker_url
from sortline.sparkplug.schema import DataType, Payload

if TYPE_CHECKING:
    from sortline.runtime import SortingLine

__all__ = [
    "DataType",
    "LineReading",
    "Payload",
    "SparkplugNode",
    "attach_sparkplug",
    "parse_broker_url",
]


def attach_sparkplug(line: SortingLine) -> SparkplugNode:
    """The line's edge node (``[mqtt]``): reads ``line.snapshot()``, commands
    ``line``, audits into the line's audit log, raises ``mqtt.link`` through
    the line's alarm book. Started and stopped by the line."""
    from pathlib import Path

    from core.errors import InputFileError
    from sortline.config import records_dir

    cfg = line.cfg

    def read() -> LineReading:
        return LineReading(line.snapshot(), len(line.alarms.view().active))

    def resolve(value: str) -> Path:
        return Path(cfg.resolve_path(value))

    name = cfg.mqtt.node or cfg.line.name
    try:
        state = records_dir(cfg)
        state.mkdir(parents=True, exist_ok=True)
        node = SparkplugNode(
            cfg.mqtt, name, read, line, line.audit, resolve,
            bd_seq_file=state / f"{name}.sparkplug-bdseq",
        )  # fmt: skip
    except (ValueError, OSError) as exc:
        raise InputFileError(Path(cfg.source), str(exc), field="mqtt") from None
    line.alarms.sources.append(node.conditions)
    return node
