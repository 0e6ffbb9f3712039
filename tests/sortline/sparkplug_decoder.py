"""An independent Sparkplug B payload decoder for the tests: the protobuf wire
format read by hand from the field numbers of Eclipse Tahu's
``sparkplug_b.proto`` (no protobuf library, no code of ``sortline``), so a
mistake in ``sortline.sparkplug.schema`` cannot hide behind itself.

``decode(raw)`` -> ``{"timestamp", "seq", "metrics": [{"name", "alias",
"datatype", "timestamp", "value", "is_null", "is_historical",
"properties"}]}``; ``None`` for fields absent on the wire.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

_SIGNED_BITS = {1: 8, 2: 16, 3: 32, 4: 64}  # Int8..Int64 (two's complement in uint fields)


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, raw value): int, bytes, or the 4/8 raw bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire} not used by Sparkplug B")
        yield number, wire, value


def _scalar(number: int, raw: Any, base: int) -> Any:
    """Metric values start at field 10, property values at 3 (int, long, float,
    double, bool, string in that order)."""
    k = number - base
    if k in (0, 1):
        return raw
    if k == 2:
        return struct.unpack("<f", raw)[0]
    if k == 3:
        return struct.unpack("<d", raw)[0]
    if k == 4:
        return bool(raw)
    if k == 5:
        return raw.decode("utf-8")
    if k == 6 and base == 10:
        return bytes(raw)
    return None


def _properties(buf: bytes) -> dict[str, Any]:
    keys: list[str] = []
    values: list[Any] = []
    for number, _, raw in fields(buf):
        if number == 1:
            keys.append(raw.decode("utf-8"))
        elif number == 2:
            v = None
            for n2, _, r2 in fields(raw):
                if 3 <= n2 <= 8:
                    v = _scalar(n2, r2, 3)
            values.append(v)
    return dict(zip(keys, values, strict=True))


def _metric(buf: bytes) -> dict[str, Any]:
    m: dict[str, Any] = dict.fromkeys(("name", "alias", "timestamp", "datatype", "value"))
    m.update(is_null=False, is_historical=False, properties={})
    for number, _, raw in fields(buf):
        if number == 1:
            m["name"] = raw.decode("utf-8")
        elif number == 2:
            m["alias"] = raw
        elif number == 3:
            m["timestamp"] = raw
        elif number == 4:
            m["datatype"] = raw
        elif number == 5:
            m["is_historical"] = bool(raw)
        elif number == 7:
            m["is_null"] = bool(raw)
        elif number == 9:
            m["properties"] = _properties(raw)
        elif 10 <= number <= 16:
            m["value"] = _scalar(number, raw, 10)
    bits = _SIGNED_BITS.get(m["datatype"] or 0)
    if bits is not None and isinstance(m["value"], int):
        v = m["value"] & ((1 << bits) - 1)
        m["value"] = v - (1 << bits) if v >= 1 << (bits - 1) else v
    return m


def decode(raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"timestamp": None, "seq": None, "metrics": []}
    for number, _, value in fields(raw):
        if number == 1:
            out["timestamp"] = value
        elif number == 2:
            out["metrics"].append(_metric(value))
        elif number == 3:
            out["seq"] = value
    return out
