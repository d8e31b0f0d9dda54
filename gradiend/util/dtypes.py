"""Torch dtypes by name: ``"float32"`` ↔ ``torch.float32`` (the form configs and JSON files hold)."""
from __future__ import annotations

from typing import Any


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for ``torch.float32``, ``"float32"`` or ``"torch.float32"``."""
    return str(dtype).removeprefix("torch.")


def resolve_dtype(dtype: Any, default: Any = "float32"):
    """The ``torch.dtype`` of a dtype or its name; None gives ``default`` (None stays None)."""
    import torch

    if dtype is None:
        return None if default is None else resolve_dtype(default)
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, dtype_name(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown torch_dtype {dtype!r}; use e.g. 'float32', 'bfloat16'")
    return value
