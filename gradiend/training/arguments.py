"""Training hyper-parameters and pruning settings, validated in ``__post_init__``: a bad value (a
YAML string where a number was meant, contradicting settings) fails naming the field, before any
model is loaded."""
from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from gradiend.util.devices import device_name, placement_problems
from gradiend.util.dtypes import dtype_name

GRADIENT_KINDS = ("factual", "alternative", "diff")
PRUNE_PARTS = ("encoder-weight", "decoder-weight", "decoder-bias", "decoder-sum")
OPTIMIZERS = ("adamw", "adam")
CONVERGENT_METRICS = ("correlation",)
TORCH_DTYPES = ("float32", "float64", "float16", "bfloat16")
_PRE_PRUNE_DEFAULT_TOPK = 0.1
_POST_PRUNE_DEFAULT_TOPK = 0.01
PRE_PRUNE_METRICS = ("gradient_norm",)
"""Pre-pruning importance: ``gradient_norm`` = ``|mean source gradient|`` per base-model entry."""
POST_PRUNE_METRICS = {"weight_magnitude": "decoder-weight", **{p: p for p in PRUNE_PARTS}}
"""Post-pruning ``importance_metric`` → the ``part`` whose weights give the importance."""


def _fail(owner: str, name: str, value: Any, expected: str) -> None:
    raise ValueError(f"{owner}.{name}={value!r} is invalid: expected {expected}")


def _check_int(owner: str, name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        suffix = " or None" if allow_none else ""
        _fail(owner, name, value, f"an integer >= {minimum}{suffix}")


def _check_number(owner: str, name: str, value: Any, *, minimum: float, strict: bool,
                  maximum: float | None = None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    ok = ok and (maximum is None or value <= maximum)
    if not ok:
        bound = f"> {minimum}" if strict else f">= {minimum}"
        upper = f" and <= {maximum}" if maximum is not None else ""
        hint = " (YAML reads 1e-5 as a string; write 1.0e-5)" if isinstance(value, str) else ""
        _fail(owner, name, value, f"a number {bound}{upper}{hint}")


def _check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(owner, name, value, f"one of {list(choices)}")


def _check_keep(owner: str, topk: Any, threshold: Any) -> None:
    count = isinstance(topk, int) and not isinstance(topk, bool) and topk >= 1
    if not (topk is None or count or (isinstance(topk, float) and 0.0 < topk <= 1.0)):
        _fail(owner, "topk", topk, "an int >= 1 (count) or a float in (0, 1] (fraction)")
    _check_number(owner, "threshold", threshold, minimum=0.0, strict=False, allow_none=True)
    if topk is None and threshold is None:
        raise ValueError(f"{owner}: set topk (count or fraction) or threshold; both are None")


def _apply_alias(owner: str, topk, keep_top_k, default):
    """``keep_top_k`` (documented name) is an alias of ``topk``."""
    if keep_top_k is None:
        return topk
    if topk is not None and topk != default and topk != keep_top_k:
        raise ValueError(f"{owner}: keep_top_k={keep_top_k!r} and topk={topk!r} conflict; "
                         "keep_top_k is an alias of topk, set only one")
    return keep_top_k


@dataclass
class PrePruneConfig:
    """Keep only the base-model entries whose mean source gradient is large, before training.

    Importance (``"gradient_norm"``, the only metric) is ``|mean per-row source gradient|`` over
    ``n_samples`` rows drawn evenly from the two target transitions, ``batch_size`` per backward.
    ``topk``: a count (int) or fraction (float), alias ``keep_top_k``; ``threshold`` applies first.
    ``seed=None`` uses the training seed.
    """

    n_samples: int = 8
    topk: int | float | None = _PRE_PRUNE_DEFAULT_TOPK
    threshold: float | None = None
    source: str = "alternative"
    batch_size: int = 8
    seed: int | None = None
    importance_metric: str = "gradient_norm"
    keep_top_k: dataclasses.InitVar[int | float | None] = None

    def __post_init__(self, keep_top_k: int | float | None) -> None:
        owner = "PrePruneConfig"
        self.topk = _apply_alias(owner, self.topk, keep_top_k, _PRE_PRUNE_DEFAULT_TOPK)
        if self.importance_metric in POST_PRUNE_METRICS:
            _fail(owner, "importance_metric", self.importance_metric,
                  f"one of {list(PRE_PRUNE_METRICS)} (weight metrics need a trained GRADIEND: use PostPruneConfig)")
        _check_choice(owner, "importance_metric", self.importance_metric, PRE_PRUNE_METRICS)
        _check_int(owner, "n_samples", self.n_samples, 1)
        _check_int(owner, "batch_size", self.batch_size, 1)
        _check_int(owner, "seed", self.seed, 0, allow_none=True)
        _check_choice(owner, "source", self.source, GRADIENT_KINDS)
        _check_keep(owner, self.topk, self.threshold)


@dataclass
class PostPruneConfig:
    """Keep only the GRADIEND input entries with the largest learned weights, after training.

    Importance per input entry comes from ``part`` (``decoder-weight``: |decoder row|,
    ``encoder-weight``: |encoder column|, ``decoder-bias``: |bias|, ``decoder-sum``:
    |row sum + bias|); ``topk``/``threshold``/``keep_top_k`` as in :class:`PrePruneConfig`.
    ``importance_metric`` (documented name) selects ``part`` (:data:`POST_PRUNE_METRICS`).
    """

    topk: int | float | None = _POST_PRUNE_DEFAULT_TOPK
    threshold: float | None = None
    part: str = "decoder-weight"
    importance_metric: str | None = None
    keep_top_k: dataclasses.InitVar[int | float | None] = None

    def __post_init__(self, keep_top_k: int | float | None) -> None:
        owner = "PostPruneConfig"
        self.topk = _apply_alias(owner, self.topk, keep_top_k, _POST_PRUNE_DEFAULT_TOPK)
        if self.importance_metric is not None:
            _check_choice(owner, "importance_metric", self.importance_metric, tuple(POST_PRUNE_METRICS))
            mapped = POST_PRUNE_METRICS[self.importance_metric]
            if self.part not in ("decoder-weight", mapped):
                raise ValueError(f"PostPruneConfig: importance_metric={self.importance_metric!r} means part="
                                 f"{mapped!r}, which conflicts with part={self.part!r}; set only one")
            self.part = mapped
        _check_choice(owner, "part", self.part, PRUNE_PARTS)
        _check_keep(owner, self.topk, self.threshold)


def _from_mapping(cls: type, values: Mapping, owner: str):
    """``cls(**values)``; an unknown key is an error naming it (and the known ones)."""
    known = set(inspect.signature(cls).parameters)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{owner}: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**values)


def _as_config(value: Any, cls: type, name: str):
    """Accept a config object, a plain mapping (from YAML/JSON) or None."""
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return _from_mapping(cls, value, f"TrainingArguments.{name}")
    raise ValueError(f"TrainingArguments.{name} must be a {cls.__name__}, a mapping or None, "
                     f"got {type(value).__name__}")


@dataclass
class TrainingArguments:
    """Everything that shapes one GRADIEND training run (and its multi-seed wrapper).

    Defaults follow the original package, except that ``max_steps > 0`` is honoured whatever
    ``num_train_epochs`` says (the scheduler cycles through the data as often as needed).
    """

    # where things go
    experiment_dir: str | None = None
    output_dir: str | None = None
    # what the GRADIEND sees (encoder input) and reconstructs (decoder output)
    source: str = "alternative"
    target: str = "diff"
    # loop
    train_batch_size: int = 32
    train_max_size: int | None = None
    learning_rate: float = 1e-5
    num_train_epochs: int = 3
    max_steps: int = -1
    weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    optim: str = "adamw"
    max_length: int | None = None
    add_identity_for_other_classes: bool = False
    # in-training encoder evaluation
    do_eval: bool = True
    eval_steps: int = 250
    eval_batch_size: int = 32
    encoder_eval_max_size: int | None = None
    # later evaluation stages read these
    seed_selection_eval_max_size: int | None = None
    decoder_eval_max_size_training_like: int | None = None
    decoder_eval_max_size_neutral: int | None = None
    decoder_eval_lrs: list[float] | None = None
    decoder_eval_feature_factors: list[float] | None = None
    # the GRADIEND and its base model
    params: list[str] | None = None
    latent_dim: int = 1
    activation_encoder: str = "tanh"
    activation_decoder: str = "id"
    bias_decoder: bool = True
    normalize_gradiend: bool = True
    torch_dtype: Any = None
    device: str | None = None
    device_map: str | int | dict | None = None  # split the base model (transformers + accelerate)
    gradiend_device: str | None = None  # None: the base model's first device (its input embeddings)
    trust_remote_code: bool = False
    # seeds and convergence
    seed: int = 0
    max_seeds: int = 3
    min_convergent_seeds: int | None = None  # None: train all max_seeds seeds
    convergent_metric: str = "correlation"
    convergent_score_threshold: float = 0.5
    convergent_mean_by_class_threshold: float = 0.5
    fail_on_non_convergence: bool = False
    # pruning
    pre_prune_config: PrePruneConfig | Mapping | None = None
    post_prune_config: PostPruneConfig | Mapping | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = "TrainingArguments"
        _check_choice(owner, "source", self.source, GRADIENT_KINDS)
        _check_choice(owner, "target", self.target, GRADIENT_KINDS)
        _check_choice(owner, "optim", self.optim, OPTIMIZERS)
        _check_choice(owner, "convergent_metric", self.convergent_metric, CONVERGENT_METRICS)
        for name in ("train_batch_size", "eval_batch_size", "eval_steps", "num_train_epochs",
                     "latent_dim", "max_seeds"):
            _check_int(owner, name, getattr(self, name), 1)
        for name in ("train_max_size", "encoder_eval_max_size", "max_length", "seed_selection_eval_max_size",
                     "decoder_eval_max_size_training_like", "decoder_eval_max_size_neutral"):
            _check_int(owner, name, getattr(self, name), 1, allow_none=True)
        _check_int(owner, "seed", self.seed, 0)
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) \
                or (self.max_steps <= 0 and self.max_steps != -1):
            _fail(owner, "max_steps", self.max_steps, "a positive integer, or -1 to train by epochs")
        _check_number(owner, "learning_rate", self.learning_rate, minimum=0.0, strict=True)
        _check_number(owner, "weight_decay", self.weight_decay, minimum=0.0, strict=False)
        _check_number(owner, "adam_epsilon", self.adam_epsilon, minimum=0.0, strict=True)
        for name in ("convergent_score_threshold", "convergent_mean_by_class_threshold"):
            _check_number(owner, name, getattr(self, name), minimum=0.0, strict=False, maximum=1.0)
        _check_int(owner, "min_convergent_seeds", self.min_convergent_seeds, 1, allow_none=True)
        if self.min_convergent_seeds is not None and self.min_convergent_seeds > self.max_seeds:
            raise ValueError(
                f"TrainingArguments.min_convergent_seeds={self.min_convergent_seeds} exceeds "
                f"max_seeds={self.max_seeds}: the run could never succeed")
        for name in ("decoder_eval_lrs", "decoder_eval_feature_factors"):
            for value in getattr(self, name) or ():
                _check_number(owner, name, value, minimum=-math.inf, strict=True)
        if self.params is not None and (isinstance(self.params, str) or not self.params):
            _fail(owner, "params", self.params, "a non-empty list of parameter-name patterns or None")
        if self.torch_dtype is not None and dtype_name(self.torch_dtype) not in TORCH_DTYPES:
            _fail(owner, "torch_dtype", self.torch_dtype, f"None or one of {list(TORCH_DTYPES)}")
        placement = placement_problems(self.device, self.device_map, self.gradiend_device)
        if placement:
            raise ValueError("; ".join(f"{owner}.{name}: {problem}" for name, problem in placement))
        if self.gradiend_device is not None:
            self.gradiend_device = device_name(self.gradiend_device)  # a GPU index 1 is "cuda:1"
        self.pre_prune_config = _as_config(self.pre_prune_config, PrePruneConfig, "pre_prune_config")
        self.post_prune_config = _as_config(self.post_prune_config, PostPruneConfig, "post_prune_config")

    def total_steps(self, batches_per_epoch: int) -> int:
        """Optimiser steps of one run: ``max_steps`` when set (epochs do not cap it), else epochs."""
        return self.max_steps if self.max_steps > 0 else self.num_train_epochs * batches_per_epoch

    def to_dict(self) -> dict:
        """JSON-ready copy (nested configs as dicts, dtype as its name)."""
        out = dataclasses.asdict(self)
        if self.torch_dtype is not None:
            out["torch_dtype"] = dtype_name(self.torch_dtype)
        return out

    @classmethod
    def from_dict(cls, values: Mapping) -> "TrainingArguments":
        """Inverse of :meth:`to_dict`; an unknown key is an error naming it."""
        return _from_mapping(cls, values, "TrainingArguments")
