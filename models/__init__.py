"""Shipped ONNX models with their model cards; training and export (extra ``train``)."""

from models.registry import builtin_model_path, resolve_model

__all__ = ["builtin_model_path", "resolve_model"]
