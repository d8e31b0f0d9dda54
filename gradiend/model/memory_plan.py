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
- ``score`` (encoder evaluation, decoder grid, rewrites): the GRADIEND weights and the tangent;
- ``load``, for a model moved onto one GPU: its weights are read into host memory first.

Each part sits in one memory pool (:class:`Placement`): the process on the host (``"cpu"``), the GRADIEND
on its device, the base model and what is as large as its mapped entries on the base model's devices (a
``device_map`` splits them by its modules' sizes; a strategy such as ``"auto"`` is planned as an even
split over the visible GPUs). Each pool's peak is checked against that pool's limit: ``max_memory``, else
what the host (inside its cgroup: a SLURM job's ``--mem``) or the GPU has free.

The formulas are checked against peaks measured in subprocesses (``tests/test_memory_plan.py``,
``benchmarks/bench_memory.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from gradiend.util.memory import HOST, accelerator_free_bytes, host_available_bytes, process_bytes

GIB = 1 << 30
FLOAT32 = 4
DEFAULT_TOKENS = 64
"""Tokens per row assumed for activations when the data is not known yet (workflow start-up)."""
ACTIVATION_SLACK = 1.5
"""Allocator overhead and transient copies of the activations (measured: 1.2–1.6 ×)."""
WAYS_OUT = ("pre-prune (`pre_prune.topk`, e.g. 0.01: the GRADIEND and its optimiser shrink to the kept entries)",
            "narrow `params` (e.g. a few layers: every stage shrinks with the mapped entries)",
            "load the base model in bfloat16 (`torch_dtype: bfloat16`: weights, gradients and tangents halve)")


LOADED_ON_THE_HOST = "base model, read on the host"
_ON_HOST = ("process", LOADED_ON_THE_HOST)
_ON_GRADIEND_DEVICE = ("GRADIEND + AdamW", "GRADIEND gradients", "GRADIEND")
_WITH_THE_WEIGHTS = ("base model",)
"""Every other part is as large as the mapped entries and sits beside them (gradient, tangent, importance)."""


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


def memory_pool(device: str) -> str:
    """The pool a device's memory comes from: ``"cuda:0"`` for ``"cuda"``, the host for the CPU and for
    Apple's MPS (unified memory)."""
    kind, _, index = device.partition(":")
    if kind in (HOST, "mps"):
        return HOST
    return f"{kind}:{index or 0}"


@dataclass(frozen=True)
class Placement:
    """Where a run's memory sits: each pool's share of the base model's weights and of its mapped entries,
    and the GRADIEND's pool (the process is always on the host)."""

    weights: Mapping[str, float]
    mapped: Mapping[str, float]
    gradiend: str

    def split(self, stage: StagePlan) -> dict[str, int]:
        """``stage``'s bytes by pool (the host first)."""
        by_pool = {HOST: 0.0}
        for part, size in stage.parts.items():
            if part in _ON_HOST:
                shares = {HOST: 1.0}
            elif part in _ON_GRADIEND_DEVICE:
                shares = {self.gradiend: 1.0}
            else:
                shares = self.weights if part in _WITH_THE_WEIGHTS else self.mapped
            for pool, share in shares.items():
                by_pool[pool] = by_pool.get(pool, 0.0) + share * size
        return {pool: round(size) for pool, size in by_pool.items()}


ON_THE_HOST = Placement({HOST: 1.0}, {HOST: 1.0}, HOST)


def _module_lookup(device_map: Mapping[str, Any]):
    """``parameter name -> pool`` for a map of module names to devices (the longest matching module wins;
    ``""`` is the whole model)."""
    from gradiend.util.devices import device_name

    pools = {module: memory_pool(device_name(device)) for module, device in device_map.items()}
    by_length = sorted(pools, key=len, reverse=True)

    def pool_of(name: str) -> str:
        module = next((m for m in by_length if m == "" or name == m or name.startswith(m + ".")), None)
        return pools[module] if module is not None else next(iter(pools.values()))

    return pool_of


def _shares(sizes) -> dict[str, float]:
    """``{pool: fraction}`` of ``(pool, size)`` pairs."""
    totals: dict[str, int] = {}
    for pool, size in sizes:
        totals[pool] = totals.get(pool, 0) + size
    whole = sum(totals.values()) or 1
    return {pool: size / whole for pool, size in totals.items()}


def place(base, mapped: Mapping[str, Any], *, device: Any = None, device_map: Any = None,
          gradiend_device: Any = None) -> Placement:
    """Where a run of ``base`` (its ``mapped`` parameters by name) placed by ``device`` / ``device_map``
    keeps its memory, the GRADIEND on ``gradiend_device`` (None: the pool of the input embeddings)."""
    from gradiend.util.devices import device_name, run_devices

    if isinstance(device_map, Mapping):
        pool_of = _module_lookup(device_map)
        named = list(base.named_parameters())
        weights = _shares((pool_of(name), p.numel()) for name, p in named)
        entries = _shares((pool_of(name), p.numel()) for name, p in mapped.items())
        embedding = getattr(base.get_input_embeddings(), "weight", None)
        first = pool_of(next((name for name, p in named if p is embedding), named[0][0]))
    else:
        pools = list(dict.fromkeys(memory_pool(name) for name in run_devices(device, device_map)))
        weights = entries = {pool: 1 / len(pools) for pool in pools}
        first = pools[0]
    gradiend = first if gradiend_device is None else memory_pool(device_name(gradiend_device))
    return Placement(weights, entries, gradiend)


@dataclass(frozen=True)
class MemoryPlan:
    """The planned peaks of one configuration (see the module docstring)."""

    model: str
    dtype: str
    n_parameters: int
    n_mapped: int
    n_trained: int
    stages: tuple[StagePlan, ...]
    placement: Placement = field(default=ON_THE_HOST)

    @property
    def peaks(self) -> dict[str, int]:
        """Each pool's peak over the stages (bytes)."""
        splits = [self.placement.split(stage) for stage in self.stages]
        pools = dict.fromkeys(pool for split in splits for pool in split)
        return {pool: max(split.get(pool, 0) for split in splits) for pool in pools}

    @property
    def peak(self) -> int:
        """The largest pool's peak (on one device: the largest stage)."""
        return max(self.peaks.values())

    def stage(self, name: str) -> StagePlan:
        return next(s for s in self.stages if s.name == name)

    def lines(self) -> list[str]:
        """The plan as printable lines: one per stage, its total and its largest parts."""
        head = (f"memory plan for {self.model} ({self.dtype}, {self.n_parameters:,} parameters, GRADIEND input "
                f"{self.n_mapped:,}{f' pre-pruned to {self.n_trained:,}' if self.n_trained != self.n_mapped else ''}):")
        rows = [head]
        for stage in self.stages:
            parts = ", ".join(f"{name} {_gib(size)}" for name, size in stage.parts.items() if size >= GIB // 100)
            split = self.placement.split(stage)
            pools = "" if list(split) == [HOST] else "; " + ", ".join(f"{p} {_gib(b)}" for p, b in split.items())
            rows.append(f"  {stage.name:<9} ~{_gib(stage.total)} ({parts}){pools}")
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


def plan_memory(base, *, dtype=None, params=None, pre_prune=None, n_kept: int | None = None, latent_dim: int = 1,
                train_batch_size: int = 32, eval_batch_size: int = 32, tokens: int | None = None,
                baseline: int | None = None, label: str | None = None, device: Any = None,
                device_map: Any = None, gradiend_device: Any = None) -> MemoryPlan:
    """The plan for base model ``base`` (on the meta device or loaded) with its parameters in ``dtype``
    (None: as they are).

    ``params``: the GRADIEND's parameter patterns (one that matches nothing is a ValueError);
    ``pre_prune``: a :class:`~gradiend.training.arguments.PrePruneConfig` or mapping (``topk``,
    ``n_samples``, ``batch_size``) whose stage is planned too; ``n_kept``: the entries a known mask
    keeps (training only). ``tokens``: the longest row (None: ``DEFAULT_TOKENS``); ``baseline``: the
    process without the model (None: this process now); ``device`` / ``device_map`` / ``gradiend_device``:
    where the run places the base model and the GRADIEND (:func:`place`; all None: one device, the GPU
    when there is one)."""
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
    placement = place(base, mapped, device=device, device_map=device_map, gradiend_device=gradiend_device)
    if device_map is None and HOST not in placement.weights:  # read into host memory, then moved: model.to(device)
        stages.insert(0, StagePlan("load", {"process": fixed["process"], LOADED_ON_THE_HOST: weights}))
    return MemoryPlan(name, dtype_name(dtype), n_parameters, n, k, tuple(stages), placement)


def _given_limit(max_memory: float | Mapping[str, float] | None, pool: str) -> tuple[float, str] | None:
    """``(GiB, its key)`` that ``max_memory`` sets for ``pool``: a number sets every pool; a mapping names
    pools (``"cpu"``, ``"cuda:1"``) or kinds (``"cuda"``: every CUDA device), the exact name first."""
    if max_memory is None:
        return None
    if not isinstance(max_memory, Mapping):
        return float(max_memory), "max_memory"
    for key in (pool, pool.partition(":")[0]):
        if key in max_memory:
            return float(max_memory[key]), f"max_memory.{key}"
    return None


def memory_limits(pools, max_memory: float | Mapping[str, float] | None = None, *, measure: bool = True,
                  running_here: bool = True) -> dict[str, tuple[int | None, str]]:
    """``{pool: (bytes a run may use there, where that number comes from)}``: ``max_memory`` where it sets
    the pool, else, when ``measure``, what the host has available (inside its cgroup; plus this process
    when the run happens in it) or the GPU has free; None when unknown or not measured."""
    limits = {}
    for pool in pools:
        given = _given_limit(max_memory, pool)
        if given is not None:
            limits[pool] = int(given[0] * GIB), f"{given[1]} = {given[0]:g} GiB"
        elif not measure:
            limits[pool] = None, "not measured here: each job plans again on its node"
        elif pool == HOST:
            available, here = host_available_bytes(), (process_bytes() if running_here else 0)
            limits[pool] = (None, "available memory unknown") if available is None else (
                available + here, f"available {_gib(available)}" + (f" + this process {_gib(here)}" if here else ""))
        else:
            free = accelerator_free_bytes(pool, held_here=running_here)
            limits[pool] = (None, f"{pool} not on this machine") if free is None else (free, f"free on {pool}")
    return limits


def ensure_fits(base, *, max_memory: float | Mapping[str, float] | None = None, running_here: bool = True,
                measure: bool = True, report=None, **settings) -> MemoryPlan:
    """Plan ``base`` with ``settings`` (:func:`plan_memory`), hand the plan's lines to ``report``, and
    raise :class:`MemoryPlanError` — the numbers and the three ways out, each planned — when a pool's
    peak exceeds that pool's limit (:func:`memory_limits`)."""
    plan = plan_memory(base, **settings)
    if report is not None:
        report(plan.lines())
    limits = memory_limits(plan.peaks, max_memory, measure=measure, running_here=running_here)
    over = [(pool, need) for pool, need in plan.peaks.items() if limits[pool][0] is not None and need > limits[pool][0]]
    if not over:
        return plan
    pool = max(over, key=lambda item: item[1] / max(1, limits[item[0]][0]))[0]  # the most over its limit

    def need(variant: MemoryPlan) -> str:
        return _gib(variant.peaks.get(pool, 0))

    ways = []
    if settings.get("pre_prune") is None and settings.get("n_kept") is None:
        ways.append(f"{WAYS_OUT[0]}: ~{need(plan_memory(base, **{**settings, 'pre_prune': {'topk': 0.01}}))}")
    else:
        ways.append(f"{WAYS_OUT[0]}: pre-pruned already to {plan.n_trained:,} entries; a smaller `topk` saves little "
                    f"once the base model and one gradient dominate")
    train = plan.stage("train")
    per_tenth = 0.1 * (train.total - train.parts["process"] - train.parts["base model"])
    ways.append(f"{WAYS_OUT[1]}: now {plan.n_mapped:,} entries; every 10 % fewer saves ~{_gib(per_tenth)} in training")
    if plan.dtype not in ("bfloat16", "float16"):
        ways.append(f"{WAYS_OUT[2]}: ~{need(plan_memory(base, **{**settings, 'dtype': 'bfloat16'}))}")
    else:
        ways.append(f"{WAYS_OUT[2]}: already {plan.dtype}")
    needs = [f"~{_gib(size)} on {where} in stage "
             f"{max(plan.stages, key=lambda s: plan.placement.split(s).get(where, 0)).name!r}, but only "
             f"{_gib(limits[where][0])} may be used there ({limits[where][1]})" for where, size in over]
    raise MemoryPlanError("\n".join([
        f"{plan.model} would need " + "; and ".join(needs) + "; stopped before loading any weights.",
        *plan.lines()[1:], f"Ways out (the need on {pool}):", *(f"  - {way}" for way in ways)]))
