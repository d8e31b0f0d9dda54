"""A memory plan before any work: the peak memory of pre-pruning, training and scoring.

The base model is built on the meta device from its ``config.json`` (:func:`load_meta_model`), so the
plan sees every parameter's shape, the tied weights and the ``params`` selection exactly as a run
would, without reading a weight. A ``params`` pattern that matches nothing fails here, by name.

What each stage holds at its peak (``n`` mapped base entries, ``k`` entries the GRADIEND trains, ``b``
bytes per base-model value; the process itself — Python, torch, transformers — and the base model
weights always):

- ``pre_prune``: the importance, summed in place during the backward (``n·b``, or ``n·4`` when several
  chunks are summed in float32), and either the backward's own memory (autograd's temporaries — the
  largest mapped parameter once more — and one chunk's activations) or the masks it is saved with
  (``n`` bytes), whichever is larger;
- ``train``: the GRADIEND in float32 — weights, AdamW's two states and the source / target vectors
  (which hold its gradients too at latent size 1; two more input-sized gradients per latent unit
  otherwise) — plus, while a step runs,
  one gradient of the mapped parameters (``n·b``) with autograd's temporaries and the batch's
  activations, or, while the encoder is evaluated, the forward-mode tangent (``n·b``);
- ``score`` (encoder evaluation, decoder grid, rewrites): the GRADIEND weights and the tangent.

The formulas are checked against peaks measured in subprocesses (``tests/test_memory_plan.py``,
``benchmarks/bench_memory.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

GIB = 1 << 30
FLOAT32 = 4
DEFAULT_TOKENS = 64
"""Tokens per row assumed for activations when the data is not known yet (workflow start-up)."""
ACTIVATION_SLACK = 1.5
"""Allocator overhead and transient copies of the activations (measured: 1.2–1.6 ×)."""
WAYS_OUT = ("pre-prune (`pre_prune.topk`, e.g. 0.01: the GRADIEND and its optimiser shrink to the kept entries)",
            "narrow `params` (e.g. a few layers: every stage shrinks with the mapped entries)",
            "load the base model in bfloat16 (`torch_dtype: bfloat16`: weights, gradients and tangents halve)")


class MemoryPlanError(MemoryError):
    """The run would not fit the memory it may use; raised before any weight is loaded."""


@dataclass(frozen=True)
class StagePlan:
    """One stage's peak, by what holds it (bytes)."""

    name: str
    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())


@dataclass(frozen=True)
class MemoryPlan:
    """The planned peaks of one configuration (see the module docstring)."""

    model: str
    dtype: str
    n_parameters: int
    n_mapped: int
    n_trained: int
    stages: tuple[StagePlan, ...]

    @property
    def peak(self) -> int:
        return max(stage.total for stage in self.stages)

    def stage(self, name: str) -> StagePlan:
        return next(s for s in self.stages if s.name == name)

    def lines(self) -> list[str]:
        """The plan as printable lines: one per stage, its total and its largest parts."""
        head = (f"memory plan for {self.model} ({self.dtype}, {self.n_parameters:,} parameters, GRADIEND input "
                f"{self.n_mapped:,}{f' pre-pruned to {self.n_trained:,}' if self.n_trained != self.n_mapped else ''}):")
        rows = [head]
        for stage in self.stages:
            parts = ", ".join(f"{name} {_gib(size)}" for name, size in stage.parts.items() if size >= GIB // 100)
            rows.append(f"  {stage.name:<9} ~{_gib(stage.total)} ({parts})")
        return rows


def _gib(size: float) -> str:
    return f"{size / GIB:.2f} GiB"


def _get(config: Any, key: str, default=None):
    if config is None:
        return default
    return config.get(key, default) if isinstance(config, Mapping) else getattr(config, key, default)


def _kept(n: int, pre_prune) -> int:
    """Entries a pre-pruning keeps (a threshold alone may keep all: planned as all)."""
    from gradiend.model.topk import resolve_topk

    topk = _get(pre_prune, "topk")
    return n if topk is None else max(1, resolve_topk(topk, n))


def _activations(config, rows: int, tokens: int, value_bytes: int) -> int:
    """Bytes autograd keeps for one backward over ``rows`` × ``tokens`` (eager attention: the
    scores and probabilities of every head, the inputs of every matrix product and norm)."""
    hidden = _get(config, "hidden_size") or _get(config, "n_embd") or 0
    layers = _get(config, "num_hidden_layers") or _get(config, "n_layer") or 0
    heads = _get(config, "num_attention_heads") or _get(config, "n_head") or 1
    inner = _get(config, "intermediate_size") or _get(config, "n_inner") or 4 * hidden
    per_token_layer = 16 * hidden + 3 * inner + 4 * heads * tokens
    return int(ACTIVATION_SLACK * rows * tokens * layers * per_token_layer * value_bytes)


def process_bytes() -> int:
    """Resident memory of this process now (the interpreter with torch and transformers loaded)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return 0


def available_bytes() -> int | None:
    """Memory the system can give a new allocation now (``MemAvailable``); None when unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def plan_memory(base, *, dtype=None, params=None, pre_prune=None, n_kept: int | None = None, latent_dim: int = 1,
                train_batch_size: int = 32, eval_batch_size: int = 32, tokens: int | None = None,
                baseline: int | None = None, label: str | None = None) -> MemoryPlan:
    """The plan for base model ``base`` (on the meta device or loaded) with its parameters in ``dtype``
    (None: as they are).

    ``params``: the GRADIEND's parameter patterns (one that matches nothing is a ValueError);
    ``pre_prune``: a :class:`~gradiend.training.arguments.PrePruneConfig` or mapping (``topk``,
    ``n_samples``, ``batch_size``) whose stage is planned too; ``n_kept``: the entries a known mask
    keeps (training only). ``tokens``: the longest row (None: ``DEFAULT_TOKENS``); ``baseline``: the
    process without the model (None: this process now)."""
    import torch

    from gradiend.model.backbone import mapped_parameters
    from gradiend.util.dtypes import dtype_name, resolve_dtype

    mapped = mapped_parameters(base, params)  # a pattern that matches nothing is a ValueError here
    dtype = resolve_dtype(dtype, default=None) or next(iter(mapped.values())).dtype
    value_bytes = torch.empty((), dtype=dtype).element_size()
    n_parameters = sum(p.numel() for p in base.parameters())
    weights = n_parameters * value_bytes + sum(b.numel() * b.element_size() for b in base.buffers())
    n = sum(p.numel() for p in mapped.values())
    largest = max(p.numel() for p in mapped.values()) * value_bytes
    if n_kept is not None:
        k = int(n_kept)
    else:
        k = n if pre_prune is None else _kept(n, pre_prune)
    tokens = tokens or DEFAULT_TOKENS
    config = getattr(base, "config", None)
    fixed = {"process": process_bytes() if baseline is None else baseline, "base model": weights}
    stages = []
    if pre_prune is not None and n_kept is None:
        n_samples, batch = int(_get(pre_prune, "n_samples", 8)), int(_get(pre_prune, "batch_size", 8))
        summed = value_bytes if n_samples <= batch and value_bytes <= FLOAT32 else FLOAT32
        backward = largest + _activations(config, min(batch, n_samples), tokens, value_bytes)
        stages.append(StagePlan("pre_prune", {**fixed, "importance": n * summed, "kept indices": k * 8,
                                              "backward or masks": max(backward, n)}))
    gradiend = (2 * latent_dim + 1) * k * FLOAT32
    step = max(n * value_bytes + largest + _activations(config, train_batch_size, tokens, value_bytes),
               n * value_bytes + _activations(config, eval_batch_size, tokens, value_bytes) // 3)
    vectors = 2 if latent_dim == 1 else 2 + 2 * latent_dim  # source, target (+ weight gradients)
    stages.append(StagePlan("train", {**fixed, "GRADIEND + AdamW": 3 * gradiend,
                                      "GRADIEND gradients": vectors * k * FLOAT32, "gradient or tangent": step}))
    stages.append(StagePlan("score", {**fixed, "GRADIEND": gradiend, "tangent": n * value_bytes,
                                      "activations": _activations(config, eval_batch_size, tokens, value_bytes) // 3}))
    name = label or str(getattr(config, "name_or_path", "") or type(base).__name__)
    return MemoryPlan(name, dtype_name(dtype), n_parameters, n, k, tuple(stages))


def memory_limit(max_memory_gib: float | None, running_here: bool) -> tuple[int | None, str]:
    """``(bytes a run may use, where that number comes from)``: ``max_memory`` when set, else what the
    system has available (plus this process, when the run happens in it); None when unknown."""
    if max_memory_gib is not None:
        return int(float(max_memory_gib) * GIB), f"max_memory = {max_memory_gib} GiB"
    available = available_bytes()
    if available is None:
        return None, "available memory unknown"
    here = process_bytes() if running_here else 0
    return available + here, f"MemAvailable {_gib(available)}" + (f" + this process {_gib(here)}" if here else "")


def ensure_fits(base, *, max_memory: float | None = None, running_here: bool = True, report=None,
                **settings) -> MemoryPlan:
    """Plan ``base`` with ``settings`` (:func:`plan_memory`), hand the plan's lines to ``report``, and
    raise :class:`MemoryPlanError` — the numbers and the three ways out, each planned — when its
    peak exceeds the limit (:func:`memory_limit`)."""
    plan = plan_memory(base, **settings)
    if report is not None:
        report(plan.lines())
    limit, source = memory_limit(max_memory, running_here)
    if limit is None or plan.peak <= limit:
        return plan
    worst = max(plan.stages, key=lambda s: s.total)
    ways = []
    if settings.get("pre_prune") is None and settings.get("n_kept") is None:
        pruned = plan_memory(base, **{**settings, "pre_prune": {"topk": 0.01}})
        ways.append(f"{WAYS_OUT[0]}: ~{_gib(pruned.peak)}")
    else:
        ways.append(f"{WAYS_OUT[0]}: pre-pruned already to {plan.n_trained:,} entries; a smaller `topk` saves little "
                    f"once the base model and one gradient dominate")
    train = plan.stage("train")
    per_tenth = 0.1 * (train.total - train.parts["process"] - train.parts["base model"])
    ways.append(f"{WAYS_OUT[1]}: now {plan.n_mapped:,} entries; every 10 % fewer saves ~{_gib(per_tenth)} in training")
    if plan.dtype not in ("bfloat16", "float16"):
        ways.append(f"{WAYS_OUT[2]}: ~{_gib(plan_memory(base, **{**settings, 'dtype': 'bfloat16'}).peak)}")
    else:
        ways.append(f"{WAYS_OUT[2]}: already {plan.dtype}")
    raise MemoryPlanError("\n".join([
        f"{plan.model} would need ~{_gib(worst.total)} in stage {worst.name!r}, but only {_gib(limit)} may be used "
        f"({source}); stopped before loading any weights.", *plan.lines()[1:], "Ways out:",
        *(f"  - {way}" for way in ways)]))
