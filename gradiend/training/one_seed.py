"""One seed's run: a fresh GRADIEND over the loaded base model (at the pre-pruned size when
pre-pruning), trained, post-pruned and saved with its ``training.json``."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gradiend._version import __version__
from gradiend.data.rows import FEATURE_CLASS_ID, TRAINING_LABEL, Rows
from gradiend.training.arguments import TrainingArguments
from gradiend.training.convergence import ConvergenceInfo
from gradiend.training.encoder_probe import EncoderProbe
from gradiend.training.history import TIMING_FILE
from gradiend.training.pruning import PrePruneResult
from gradiend.training.scheduler import BatchScheduler
from gradiend.training.training_loop import TrainingRun
from gradiend.util.devices import input_device
from gradiend.util.io import atomic_dir, write_json
from gradiend.util.logging import get_logger
from gradiend.util.seed import set_seed

logger = get_logger(__name__)

# where a run was written is not a hyper-parameter: kept out of training.json so runs compare equal
_LOCATION_ARGS = ("experiment_dir", "output_dir")


@dataclass
class TrainResult:
    """One trained seed: its checkpoint folder (None when nothing was saved) and statistics."""

    seed: int
    model_dir: Path | None
    training: dict
    convergence: ConvergenceInfo
    model_with_gradiend: Any = None

    @property
    def converged(self) -> bool:
        return self.convergence.converged

    @property
    def best_correlation(self) -> float | None:
        return self.convergence.best_correlation


def build_model_with_gradiend(base, params: dict, args: TrainingArguments, target_classes, all_classes,
                              seed: int, pre_prune: PrePruneResult | None = None):
    """A fresh GRADIEND for ``seed`` over ``base`` = ``(model, tokenizer, objective, base id)`` and its
    mapped ``params``, on ``args.gradiend_device`` (None: the device the base model's inputs go to)."""
    from gradiend.model.param_mapped import ParamMappedGradiendModel, spec_from_indices
    from gradiend.model.text import TextModelWithGradiend

    model, tokenizer, objective, base_id = base
    shapes = {name: tuple(p.shape) for name, p in params.items()}
    param_map: dict[str, Any] = dict(shapes)
    if pre_prune is not None:  # a parameter without kept entries is left out
        kept = pre_prune.ordered_as(list(params)).kept
        specs = {name: spec_from_indices(shape, kept[name]) for name, shape in shapes.items()}
        param_map = {name: spec for name, spec in specs.items() if spec is not None}
    set_seed(seed)
    gradiend = ParamMappedGradiendModel(
        param_map, latent_dim=args.latent_dim, activation_encoder=args.activation_encoder,
        activation_decoder=args.activation_decoder, bias_decoder=args.bias_decoder, torch_dtype=torch.float32,
        device=input_device(model) if args.gradiend_device is None else args.gradiend_device, base_layout=shapes)
    c0, c1 = target_classes
    gradiend.metadata = {"target_classes": [c0, c1], "seed": seed, "gradiend_version": __version__}
    directions = {**{str(c): 0 for c in all_classes or ()}, c0: 1, c1: -1}
    return TextModelWithGradiend(model, gradiend, tokenizer=tokenizer, objective=objective, source=args.source,
                                 target=args.target, feature_class_encoding_direction=directions,
                                 base_model_id=base_id, max_length=args.max_length)


def train_one_seed(make_model, seed: int, rows: Rows, eval_rows: Rows | None, args: TrainingArguments,
                   target_classes, target_dir, progress: bool, started: float) -> TrainResult:
    """Train the GRADIEND ``make_model()`` builds (after the batch schedule is checked), post-prune it
    and save it to ``target_dir`` (None: memory only); ``started``: when the run began (``timing.json``)."""
    names = rows.transition_names
    scheduler = BatchScheduler(rows.frame[FEATURE_CLASS_ID].tolist(), rows.frame[TRAINING_LABEL].tolist(),
                               args.train_batch_size, seed, group_names=names)
    probe = None if eval_rows is None else EncoderProbe(eval_rows, target_classes, args.source,
                                                        args.eval_batch_size, progress)
    mwg = make_model()
    run = TrainingRun(mwg, scheduler, rows, probe, args, target_classes, progress)
    info = run.run()
    trained_dim = mwg.gradiend.input_dim
    post = args.post_prune_config
    if post is not None:
        mwg.prune_gradiend(topk=post.topk, threshold=post.threshold, part=post.part)
    steps, batches_per_epoch = run.total_steps, scheduler.batches_per_epoch
    training = run.history.to_dict(
        run.best.step, convergence_info=info.to_dict(),
        training_args={k: v for k, v in args.to_dict().items() if k not in _LOCATION_ARGS},
        seed=seed, source=args.source, target=args.target, total_steps=steps,
        batches_per_epoch=batches_per_epoch, epochs=steps / batches_per_epoch,
        train_rows=len(rows), eval_rows=0 if eval_rows is None else len(eval_rows),
        eval_split=None if eval_rows is None else eval_rows.split,
        transitions={str(k): v for k, v in names.items()},
        input_dim={"unpruned": mwg.unpruned_length, "trained": trained_dim, "final": mwg.gradiend.input_dim},
        gradiend_version=__version__)
    timing = {**run.timing, "total_s": time.perf_counter() - started,
              "seconds_per_step": run.timing["train_s"] / steps}
    if target_dir is not None:
        with atomic_dir(target_dir) as tmp:
            mwg.save_pretrained(tmp, training=training)
            write_json(Path(tmp) / TIMING_FILE, timing)
    logger.info("seed %d: %s (best step %s, correlation %s)", seed, info.reason, info.best_step,
                info.best_correlation)
    return TrainResult(seed, None if target_dir is None else Path(target_dir), training, info, mwg)
