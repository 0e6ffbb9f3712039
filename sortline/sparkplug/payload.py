"""Building and reading Sparkplug B payloads (``schema.Payload``): metric
values by data type, birth metrics with their unit, data metrics by alias."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sortline.sparkplug.metrics import MetricDef, Value
from sortline.sparkplug.schema import DataType, Payload

__all__ = ["birth_metric", "data_metric", "death_payload", "new_payload", "read_value"]

_INT32 = {DataType.INT8, DataType.INT16, DataType.INT32, DataType.UINT8, DataType.UINT16,
          DataType.UINT32}  # fmt: skip
_INT64 = {DataType.INT64, DataType.UINT64, DataType.DATETIME}
_SIGNED_BITS = {DataType.INT8: 8, DataType.INT16: 16, DataType.INT32: 32, DataType.INT64: 64}


def new_payload(t_ms: int, seq: int | None) -> Any:
    p = Payload(timestamp=t_ms)
    if seq is not None:
        p.seq = seq
    return p


def _set(m: Any, datatype: DataType, value: Value) -> None:
    if value is None:
        m.is_null = True
    elif datatype is DataType.BOOLEAN:
        m.boolean_value = bool(value)
    elif datatype in (DataType.STRING, DataType.TEXT):
        m.string_value = str(value)
    elif datatype is DataType.FLOAT:
        m.float_value = float(value)
    elif datatype is DataType.DOUBLE:
        m.double_value = float(value)
    elif datatype in _INT32:
        m.int_value = int(value) & 0xFFFFFFFF  # signed: two's complement (spec 6.4.16)
    elif datatype in _INT64:
        m.long_value = int(value) & 0xFFFFFFFFFFFFFFFF
    else:
        raise ValueError(f"metric {m.name or m.alias}: no value encoding for {datatype.name}")


def birth_metric(p: Any, d: MetricDef, value: Value, t_ms: int) -> None:
    """Append ``d`` as a birth certificate carries it: name, alias, type,
    unit (property ``engUnit``) and value."""
    m = p.metrics.add(name=d.name, alias=d.alias, timestamp=t_ms, datatype=int(d.datatype))
    if d.unit:
        m.properties.keys.append("engUnit")
        m.properties.values.add(type=int(DataType.STRING), string_value=d.unit)
    _set(m, d.datatype, value)


def data_metric(p: Any, d: MetricDef, value: Value, t_ms: int, historical: bool = False) -> None:
    """Append a changed value by alias (data messages carry no names)."""
    m = p.metrics.add(alias=d.alias, timestamp=t_ms, datatype=int(d.datatype))
    if historical:
        m.is_historical = True
    _set(m, d.datatype, value)


def death_payload(bd_seq: int, t_ms: int) -> bytes:
    """NDEATH: ``bdSeq`` only, no ``seq`` (spec 3.0)."""
    p = Payload(timestamp=t_ms)
    p.metrics.add(name="bdSeq", timestamp=t_ms, datatype=int(DataType.UINT64), long_value=bd_seq)
    return bytes(p.SerializeToString())


def read_value(m: Any) -> Value:
    """A received metric's value (commands), ints sign-extended by type."""
    if m.is_null:
        return None
    field = m.WhichOneof("value")
    if field is None or field in ("bytes_value", "dataset_value", "template_value"):
        return None
    value: Value = getattr(m, field)
    bits = (
        _SIGNED_BITS.get(DataType(m.datatype))
        if m.datatype in DataType._value2member_map_
        else None
    )
    if bits is not None and isinstance(value, int) and not isinstance(value, bool):
        value &= (1 << bits) - 1
        if value >= 1 << (bits - 1):
            value -= 1 << bits
    return value


def metric_values(defs: Iterable[MetricDef], values: Iterable[Value]) -> dict[str, Value]:
    return {d.name: v for d, v in zip(defs, values, strict=True)}
