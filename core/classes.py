"""The default material taxonomy. Models state their own list in metadata;
recipes name classes by name, never by index."""

from __future__ import annotations

DEFAULT_CLASSES: tuple[str, ...] = (
    "steel",
    "stainless",
    "aluminium",
    "copper",
    "brass",
    "pcb",
    "battery",
    "plastic",
    "rubber",
    "residue",
)
