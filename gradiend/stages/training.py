"""Stages that train: the shared pre-pruning mask, and one GRADIEND per seed."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping

from gradiend.stages.models import read_tables_for_model, target_classes


def _trainer(config: Mapping, table, args):
    """A :class:`TextPredictionTrainer` on the experiment's table; it loads the base model once."""
    from gradiend.training.trainer import TextPredictionTrainer

    return TextPredictionTrainer(config["base_model_path"], data=table, args=args,
                                 target_classes=target_classes(config), progress=sys.stderr.isatty())


def pre_prune(config: dict, *, training: str, importance: str, mask: str, summary: str) -> None:
    """Score every base-model entry by its mean source gradient and keep the top ones.

    Config: ``base_model, base_model_path, trust_remote_code, data.target_classes, pre_prune.{n_samples,
    topk, threshold, source, batch_size, seed}`` (the config resolves ``seed: null`` to the first seed),
    ``training.{params, torch_dtype, max_length, train_max_size, device_map}``.
    Reads: ``training`` (rows of the ``train`` split of the two target classes).
    Writes:
      - ``importance``: safetensors, one tensor per mapped base parameter (its shape): float32, or the
        base model's bfloat16 / float16 when one backward covers every sampled row (``batch_size >=
        n_samples``), where that dtype holds the value exactly (:func:`gradiend.training.pruning.accumulator_dtype`);
      - ``mask``: safetensors, one bool tensor per mapped base parameter (True = kept);
      - ``summary``: JSON ``{"input_dim": n, "kept": k, "topk": ..., "threshold": ..., "source": ...,
        "n_samples": ..., "batch_size": ..., "seed": ..., "per_parameter": {name: kept}}``.
    """
    from gradiend.training.arguments import PrePruneConfig, TrainingArguments
    from gradiend.util.io import save_safetensors, write_json

    settings = dict(config["pre_prune"])
    training_config = config["training"]
    args = TrainingArguments(
        params=training_config["params"], torch_dtype=training_config["torch_dtype"],
        max_length=training_config["max_length"], train_max_size=training_config["train_max_size"],
        device_map=training_config["device_map"],
        seed=settings["seed"], trust_remote_code=bool(config["trust_remote_code"]),
        pre_prune_config=PrePruneConfig(**settings))
    table, _ = read_tables_for_model(config, training)
    result = _trainer(config, table, args).compute_pre_prune_mask()
    save_safetensors(result.importance, importance)
    result = result.without_importance()  # the masks are built after the importance is released
    save_safetensors(result.mask, mask)
    write_json(summary, {"input_dim": result.n_total, "kept": result.n_kept, **settings,
                         "per_parameter": result.kept_per_parameter()})


def _load_pre_prune(mask: str):
    """The pre-pruning result whose mask file is ``mask`` (importance lies beside it, as written by
    :func:`pre_prune`)."""
    from gradiend.training.pruning import IMPORTANCE_FILE, MASK_FILE, PrePruneResult

    path = Path(mask)
    if path.name != MASK_FILE or not (path.parent / IMPORTANCE_FILE).is_file():
        raise FileNotFoundError(f"pre-pruning mask {mask}: expected {MASK_FILE} with {IMPORTANCE_FILE} beside it "
                                f"(the folder the pre_prune stage writes)")
    return PrePruneResult.load(path.parent, importance=False)  # training reads the kept entries only


def training_arguments(config: Mapping, seed: int):
    """:class:`TrainingArguments` of one seed from the config's ``training`` and ``post_prune``."""
    from gradiend.training.arguments import TrainingArguments

    values = dict(config["training"])
    return TrainingArguments(**values, seed=int(seed), max_seeds=1,  # one job, one seed; select_seed chooses
                             trust_remote_code=bool(config["trust_remote_code"]),
                             post_prune_config=config["post_prune"])


def train_seed(config: dict, *, seed: int, training: str, mask: str | None, model: str,
               convergence: str) -> None:
    """Train one GRADIEND for one seed (then post-prune it when configured).

    Config: ``base_model, base_model_path, trust_remote_code, data.target_classes``, the ``training``
    keys a run reads (TrainingArguments fields; ``workflow_config.STAGE_KEYS``), ``post_prune`` (null or ``{topk, threshold, part}``).
    Reads: ``training`` (``train`` split for steps, ``validation`` split for in-training encoder
    evaluation); ``mask`` from :func:`pre_prune` (``importance.safetensors`` beside it) or ``None``
    (no pre-pruning). Every seed reuses the same mask, and its GRADIEND is built at the pruned size.
    Writes:
      - ``model``: a GRADIEND checkpoint folder: ``config.json`` (architecture, parameter mapping,
        metadata incl. base model, seed, target classes), ``model.safetensors``, ``training.json``
        (the full evaluation history, the best step, and ``convergence_info`` = {converged,
        reason, ...}), ``timing.json`` (wall-clock times, the only non-deterministic file);
      - ``convergence``: PNG of correlation and mean encoding per class over the steps.
    A non-convergent run is written like any other (selection decides); NaN/inf gradients raise
    with the step number.
    """
    from gradiend.plots.convergence import plot_training_convergence

    table, _ = read_tables_for_model(config, training)
    trainer = _trainer(config, table, training_arguments(config, seed))
    pruned = None if mask is None else _load_pre_prune(mask)
    result = trainer.train_seed(int(seed), output_dir=model, pre_prune_importance=pruned)
    plot_training_convergence(result.training, convergence, experiment=config["name"], seed=int(seed))
