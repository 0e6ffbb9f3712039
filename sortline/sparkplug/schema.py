"""The Sparkplug B payload schema, built at import as protobuf message classes.

Source: Eclipse Tahu, ``sparkplug_b/sparkplug_b.proto`` (package
``org.eclipse.tahu.protobuf``, proto2, EPL-2.0), the schema of the Sparkplug
B 3.0 specification (Eclipse Sparkplug Working Group). Neither ``protoc`` nor
``grpcio-tools`` is part of this project's environment, so instead of a
generated ``_pb2`` module the same schema is written here as a
``descriptor_pb2.FileDescriptorProto`` (field names, numbers, types, labels
and oneofs as in the ``.proto``) and turned into classes by protobuf's own
``message_factory``: the wire format is protobuf's, not ours, and there is no
generated file whose protoc version must match the installed runtime.

``Payload`` is the top-level message; its nested types are
``Payload.Metric``, ``Payload.PropertySet``, ``Payload.PropertyValue``,
``Payload.MetaData``, ``Payload.DataSet`` and ``Payload.Template``.
``DataType`` numbers the metric and property types (spec 3.0, 6.4.16).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["PACKAGE", "DataType", "Payload", "file_descriptor"]

PACKAGE = "org.eclipse.tahu.protobuf"
_FILE = "sparkplug_b.proto"
_MAX = 536870912  # "extensions N to max": end is exclusive, max field number + 1


class DataType(enum.IntEnum):
    """Sparkplug B data types (metric ``datatype`` and property ``type``)."""

    UNKNOWN = 0
    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14
    UUID = 15
    DATASET = 16
    BYTES = 17
    FILE = 18
    TEMPLATE = 19
    PROPERTYSET = 20
    PROPERTYSETLIST = 21


_PROTO_NAMES = {  # where the .proto's spelling is not str.title() of ours
    DataType.UINT8: "UInt8", DataType.UINT16: "UInt16", DataType.UINT32: "UInt32",
    DataType.UINT64: "UInt64", DataType.DATETIME: "DateTime", DataType.UUID: "UUID",
    DataType.DATASET: "DataSet",
    DataType.PROPERTYSET: "PropertySet", DataType.PROPERTYSETLIST: "PropertySetList",
}  # fmt: skip
_F = descriptor_pb2.FieldDescriptorProto
_SCALAR = {
    "string": _F.TYPE_STRING,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
    "bytes": _F.TYPE_BYTES,
}
# (name, number, type or ".Payload.X" message, "optional" | "repeated" | oneof name)
_Field = tuple[str, int, str, str]
_ONEOF_SCALARS: list[tuple[str, str]] = [
    ("int_value", "uint32"),
    ("long_value", "uint64"),
    ("float_value", "float"),
    ("double_value", "double"),
    ("boolean_value", "bool"),
    ("string_value", "string"),
]


def _oneof(first: int, extra: list[tuple[str, str]]) -> list[_Field]:
    """The ``value`` oneof: the six scalars from field ``first`` on, then ``extra``."""
    pairs = _ONEOF_SCALARS + extra
    return [(name, first + i, kind, "value") for i, (name, kind) in enumerate(pairs)]


def _message(
    name: str,
    fields: list[_Field],
    nested: Sequence[descriptor_pb2.DescriptorProto] = (),
    extensions_from: int | None = None,
) -> descriptor_pb2.DescriptorProto:
    msg = descriptor_pb2.DescriptorProto(name=name)
    oneofs: list[str] = []
    for fname, number, kind, label in fields:
        f = msg.field.add(name=fname, number=number)
        if kind.startswith("."):
            f.type, f.type_name = _F.TYPE_MESSAGE, f".{PACKAGE}{kind}"
        else:
            f.type = _SCALAR[kind]
        f.label = _F.LABEL_REPEATED if label == "repeated" else _F.LABEL_OPTIONAL
        if label not in ("optional", "repeated"):
            if label not in oneofs:
                oneofs.append(label)
                msg.oneof_decl.add(name=label)
            f.oneof_index = oneofs.index(label)
    msg.nested_type.extend(nested)
    if extensions_from is not None:
        msg.extension_range.add(start=extensions_from, end=_MAX)
    return msg


def _extension(name: str) -> descriptor_pb2.DescriptorProto:
    return _message(name, [], extensions_from=1)


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """``sparkplug_b.proto`` as a descriptor (see the module doc)."""
    p = ".Payload"
    parameter = _message(
        "Parameter",
        [
            ("name", 1, "string", "optional"),
            ("type", 2, "uint32", "optional"),
            *_oneof(3, [("extension_value", f"{p}.Template.Parameter.ParameterValueExtension")]),
        ],
        [_extension("ParameterValueExtension")],
    )
    template = _message(
        "Template",
        [
            ("version", 1, "string", "optional"),
            ("metrics", 2, f"{p}.Metric", "repeated"),
            ("parameters", 3, f"{p}.Template.Parameter", "repeated"),
            ("template_ref", 4, "string", "optional"),
            ("is_definition", 5, "bool", "optional"),
        ],
        [parameter],
        extensions_from=6,
    )
    ds_value = _message(
        "DataSetValue",
        _oneof(1, [("extension_value", f"{p}.DataSet.DataSetValue.DataSetValueExtension")]),
        [_extension("DataSetValueExtension")],
    )
    row = _message("Row", [("elements", 1, f"{p}.DataSet.DataSetValue", "repeated")], [], 2)
    dataset = _message(
        "DataSet",
        [
            ("num_of_columns", 1, "uint64", "optional"),
            ("columns", 2, "string", "repeated"),
            ("types", 3, "uint32", "repeated"),
            ("rows", 4, f"{p}.DataSet.Row", "repeated"),
        ],
        [ds_value, row],
        extensions_from=5,
    )
    prop_value = _message(
        "PropertyValue",
        [
            ("type", 1, "uint32", "optional"),
            ("is_null", 2, "bool", "optional"),
            *_oneof(
                3,
                [
                    ("propertyset_value", f"{p}.PropertySet"),
                    ("propertysets_value", f"{p}.PropertySetList"),
                    ("extension_value", f"{p}.PropertyValue.PropertyValueExtension"),
                ],
            ),
        ],
        [_extension("PropertyValueExtension")],
    )
    prop_set = _message(
        "PropertySet",
        [("keys", 1, "string", "repeated"), ("values", 2, f"{p}.PropertyValue", "repeated")],
        extensions_from=3,
    )
    prop_list = _message(
        "PropertySetList", [("propertyset", 1, f"{p}.PropertySet", "repeated")], [], 2
    )
    meta = _message(
        "MetaData",
        [
            ("is_multi_part", 1, "bool", "optional"),
            ("content_type", 2, "string", "optional"),
            ("size", 3, "uint64", "optional"),
            ("seq", 4, "uint64", "optional"),
            ("file_name", 5, "string", "optional"),
            ("file_type", 6, "string", "optional"),
            ("md5", 7, "string", "optional"),
            ("description", 8, "string", "optional"),
        ],
        extensions_from=9,
    )
    metric = _message(
        "Metric",
        [
            ("name", 1, "string", "optional"),
            ("alias", 2, "uint64", "optional"),
            ("timestamp", 3, "uint64", "optional"),
            ("datatype", 4, "uint32", "optional"),
            ("is_historical", 5, "bool", "optional"),
            ("is_transient", 6, "bool", "optional"),
            ("is_null", 7, "bool", "optional"),
            ("metadata", 8, f"{p}.MetaData", "optional"),
            ("properties", 9, f"{p}.PropertySet", "optional"),
            *_oneof(
                10,
                [
                    ("bytes_value", "bytes"),
                    ("dataset_value", f"{p}.DataSet"),
                    ("template_value", f"{p}.Template"),
                    ("extension_value", f"{p}.Metric.MetricValueExtension"),
                ],
            ),
        ],
        [_extension("MetricValueExtension")],
    )
    payload = _message(
        "Payload",
        [
            ("timestamp", 1, "uint64", "optional"),
            ("metrics", 2, f"{p}.Metric", "repeated"),
            ("seq", 3, "uint64", "optional"),
            ("uuid", 4, "string", "optional"),
            ("body", 5, "bytes", "optional"),
        ],
        [template, dataset, prop_value, prop_set, prop_list, meta, metric],
        extensions_from=6,
    )
    fdp = descriptor_pb2.FileDescriptorProto(name=_FILE, package=PACKAGE, syntax="proto2")
    fdp.message_type.append(payload)
    dt = fdp.enum_type.add(name="DataType")
    for member in DataType:
        dt.value.add(name=_PROTO_NAMES.get(member, member.name.title()), number=int(member))
    fdp.options.java_package = PACKAGE
    fdp.options.java_outer_classname = "SparkplugBProto"
    return fdp


def _build() -> Any:
    pool = descriptor_pool.DescriptorPool()  # our own pool: no clash with a Tahu _pb2 loaded
    pool.Add(file_descriptor())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.Payload"))


Payload: Any = _build()
