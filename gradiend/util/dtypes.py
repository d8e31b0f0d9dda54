"""Torch dtypes by name: ``"float32"`` ↔ ``torch.float32`` (the form configs and JSON files hold)."""
from __future__ import annotations

from typing import Any


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for ``torch.float32``, ``"float32"`` or ``"torch.float32"``."""
    return str(dtype).removeprefix("torch.")


def resolve_dtype(dtype: Any, default: Any = "float32", allow_auto: bool = False):
    """The ``torch.dtype`` of a dtype or its name; None gives ``default`` (None stays None);
    ``"auto"`` passes through when ``allow_auto`` (for ``from_pretrained``)."""
    import torch

    if dtype is None:
        return None if default is None else resolve_dtype(default)
    if isinstance(dtype, torch.dtype) or (allow_auto and dtype == "auto"):
        return dtype
    value = getattr(torch, dtype_name(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown torch_dtype {dtype!r}; use e.g. 'float32', 'bfloat16'"
                         f"{' or ' + repr('auto') if allow_auto else ''}")
    return value
