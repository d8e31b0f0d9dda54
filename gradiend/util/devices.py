"""Devices: the names a configuration gives, checked before any weights load, and where a placed model's
parts are.

A base model sits on one device or, with a ``device_map`` (transformers + accelerate), is split over
several; the GRADIEND sits on one device of its own. Inputs go to the device of the input embeddings
(:func:`input_device`), a parameter's gradient is copied onto the GRADIEND's device, and an update onto
each parameter's own device.

Two kinds of checks, each a ``(field, problem)`` pair the caller words with its key:

- :func:`placement_problems`: what any machine can tell, without importing torch (so the workflow's
  start-up stays fast): the form of a device or a map, a map that offloads (to ``"disk"``, or to
  ``"cpu"`` beside a GPU: accelerate then streams those weights in for each forward, so they are no
  parameters autograd can reach and have no gradient), ``device`` and ``device_map`` both set;
- :func:`device_problems`: what this machine can run: accelerate is installed for a map, the named
  devices exist, and the base-model dtype runs on them (a probe matmul; on CUDA bfloat16 also needs
  compute capability 8.0).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
DEVICE_FORM = "'cpu', 'cuda', 'cuda:<i>', 'mps', 'xpu', 'xpu:<i>' or a GPU index"
_DEVICE = re.compile(r"^(cpu|mps|(cuda|xpu)(:\d+)?)$")
_OFFLOAD = ("an offloaded module's weights are streamed in for each forward pass, so they have no gradient; "
            "put every module on a GPU, or all of them on 'cpu'")


def device_name(value: Any) -> str | None:
    """``"cuda:1"`` for ``1``, ``"cuda:1"`` or ``torch.device("cuda", 1)``; None when ``value`` names no device."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"cuda:{value}" if value >= 0 else None
    name = str(value)
    return name if _DEVICE.match(name) else None


def _map_devices(device_map: Any) -> list[str] | None:
    """The devices a map names (a strategy such as ``"auto"`` names none); None when it is malformed."""
    if device_map in DEVICE_MAP_STRATEGIES:
        return []
    if isinstance(device_map, Mapping):
        names = [device_name(v) if v not in ("disk", "meta") else v for v in device_map.values()]
        ok = device_map and all(isinstance(k, str) for k in device_map) and None not in names
        return names if ok else None
    name = device_name(device_map)
    return None if name is None else [name]


def placement_problems(device: Any = None, device_map: Any = None,
                       gradiend_device: Any = None) -> list[tuple[str, str]]:
    """``(field, problem)`` for what is wrong with the form of these settings on any machine."""
    problems = []
    for field, value in (("device", device), ("gradiend_device", gradiend_device)):
        if value is not None and device_name(value) is None:
            problems.append((field, f"{value!r} is not a device: expected {DEVICE_FORM}"))
    if device_map is None:
        return problems
    named = _map_devices(device_map)
    if named is None:
        problems.append(("device_map", f"{device_map!r} is not a device map: expected one of "
                                       f"{list(DEVICE_MAP_STRATEGIES)}, a device ({DEVICE_FORM}) or a mapping of "
                                       f"module names to devices"))
        return problems
    if "disk" in named or "meta" in named:
        problems.append(("device_map", f"{device_map!r} offloads modules to 'disk'/'meta': {_OFFLOAD}"))
    elif "cpu" in named and any(n != "cpu" for n in named):
        problems.append(("device_map", f"{device_map!r} puts modules on 'cpu' beside a GPU, which accelerate "
                                       f"offloads: {_OFFLOAD}"))
    if device is not None:
        problems.append(("device", f"{device!r} and device_map {device_map!r} are both set; set one "
                                   f"(device_map places the base model, device puts it on one device)"))
    return problems


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _cuda_capability(index: int) -> tuple[int, int]:
    import torch

    return tuple(torch.cuda.get_device_capability(index))


def _matmul_runs(dtype, device: str) -> bool:
    """Whether a small matmul in ``dtype`` runs on ``device`` (what a forward pass needs first)."""
    import torch

    try:
        x = torch.ones(4, 4, dtype=dtype, device=device)
        return bool(torch.isfinite(x @ x).all().item())
    except (RuntimeError, TypeError, NotImplementedError):
        return False


def _absent(name: str) -> str | None:
    """Why ``name`` (a well-formed device) is not on this machine, or None when it is."""
    import torch

    kind, _, index = name.partition(":")
    if kind == "cpu":
        return None
    if kind == "mps":
        return None if torch.backends.mps.is_available() else "this machine has no MPS device"
    count = _cuda_count() if kind == "cuda" else (torch.xpu.device_count() if hasattr(torch, "xpu")
                                                  and torch.xpu.is_available() else 0)
    if count == 0:
        return f"this machine has no {kind.upper()} device (torch {torch.__version__} sees none)"
    if index and int(index) >= count:
        return f"this machine has {count} {kind.upper()} device(s), {kind}:0 to {kind}:{count - 1}"
    return None


def default_device() -> str:
    """Where a model goes when nothing names a device: the GPU whenever one is visible, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_devices(device: Any = None, device_map: Any = None) -> list[str]:
    """The devices a base model placed by ``device`` / ``device_map`` runs on (each named once): a map's
    devices, every visible GPU for a strategy such as ``"auto"``, else ``device``, else the GPU if any."""
    if device_map is not None:
        named = _map_devices(device_map) or []
        if device_map in DEVICE_MAP_STRATEGIES:
            named = [f"cuda:{i}" for i in range(_cuda_count())] or ["cpu"]
        return list(dict.fromkeys(named))
    if device is not None:
        return [device_name(device)]
    return ["cuda:0" if _cuda_count() else "cpu"]


def dtype_problem(dtype_label: str, device: str) -> str | None:
    """Why this machine's ``device`` cannot run a model in the dtype ``dtype_label``, or None."""
    import torch

    dtype = getattr(torch, dtype_label, None)
    if not isinstance(dtype, torch.dtype) or dtype == torch.float32:
        return None
    if device.startswith("cuda") and dtype == torch.bfloat16:
        capability = _cuda_capability(int(device.partition(":")[2] or 0))
        if capability < (8, 0):
            return (f"{device} (compute capability {capability[0]}.{capability[1]}) has no native bfloat16, "
                    f"which needs 8.0 (Ampere or newer): use float16 or float32")
    if not _matmul_runs(dtype, device):
        return f"torch {torch.__version__} cannot run {dtype_label} matmuls on {device}: use float32"
    return None


def probes_dtype(torch_dtype: Any) -> bool:
    """Whether checking a base-model dtype runs a probe on the devices: float32 (and None, "auto") runs
    everywhere, so it needs no probe and no torch import."""
    from gradiend.util.dtypes import dtype_name

    return torch_dtype not in (None, "auto") and dtype_name(torch_dtype) != "float32"


def device_problems(device: Any = None, device_map: Any = None, gradiend_device: Any = None,
                    torch_dtype: Any = None) -> list[tuple[str, str]]:
    """:func:`placement_problems`, then what this machine cannot run: an absent device, a dtype its
    devices cannot compute in."""
    from gradiend.util.dtypes import dtype_name

    import importlib.util

    problems = placement_problems(device, device_map, gradiend_device)
    if problems:
        return problems
    if device_map is not None and importlib.util.find_spec("accelerate") is None:
        problems.append(("device_map", f"{device_map!r} needs the package accelerate, which is not installed: "
                                       f"pip install accelerate (or the extra gradiend[multi-gpu])"))
    for field, value in (("device", device), ("gradiend_device", gradiend_device)):
        why = None if value is None else _absent(device_name(value))
        if why:
            problems.append((field, f"{value!r}: {why}"))
    for name in _map_devices(device_map) or []:
        why = _absent(name)
        if why:
            problems.append(("device_map", f"{device_map!r} names {name}: {why}"))
    if problems or not probes_dtype(torch_dtype):
        return problems
    label = dtype_name(torch_dtype)
    for name in run_devices(device, device_map):
        why = dtype_problem(label, name)
        if why:
            problems.append(("torch_dtype", f"{label!r} on {name}: {why}"))
    return problems


def check_devices(owner: str, **settings) -> None:
    """Raise one ValueError naming ``owner.<field>`` for every :func:`device_problems` of ``settings``."""
    problems = device_problems(**settings)
    if problems:
        raise ValueError("; ".join(f"{owner}.{field}: {why}" for field, why in problems))


def input_device(model):
    """The device a model's inputs go to: that of its input embeddings (the first device of a split model),
    else that of its first parameter."""
    import torch

    try:
        weight = model.get_input_embeddings().weight
    except (AttributeError, NotImplementedError):
        weight = None
    return weight.device if isinstance(weight, torch.Tensor) else next(model.parameters()).device
