"""``TextPredictionTrainer``: data in, trained GRADIEND out (one seed or several).

The trainer reads the data once (``TextPredictionConfig`` → unified table), loads the base model
once, and for each seed builds a fresh GRADIEND (at the pre-pruned size when pre-pruning), trains
it (:mod:`.training_loop`), post-prunes it and saves it with its ``training.json``. Every data
problem (a class without rows, a transition smaller than the batch, a split missing for
evaluation) is reported before the model is loaded.
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gradiend._version import __version__
from gradiend.training.arguments import TrainingArguments
from gradiend.training.convergence import ConvergenceInfo
from gradiend.training.encoder_probe import EncoderProbe
from gradiend.training.history import TIMING_FILE, load_training_stats
from gradiend.training.pruning import PrePruneResult, compute_pre_prune_mask
from gradiend.data.rows import FEATURE_CLASS_ID, TRAINING_LABEL, Rows, evaluation_rows, training_rows
from gradiend.training.scheduler import BatchScheduler
from gradiend.training.seeds import (SEED_REPORT_FILE, SeedRun, build_seed_report, check_enough_convergent,
                                     run_seeds, seeds_to_try, select_best_seed)
from gradiend.training.training_loop import TrainingRun
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


def check_class_rows(data, target_classes=None) -> None:
    """Refuse data handed over in memory (per-class frames or one table) whose target classes have no
    rows: data creation only warns about empty classes, training names them here.

    The target classes are ``target_classes``, else the two classes present, else every class.
    """
    import pandas as pd

    if isinstance(data, dict) and data and all(isinstance(f, pd.DataFrame) for f in data.values()):
        counts = {str(c): len(f) for c, f in data.items()}
    elif isinstance(data, pd.DataFrame) and "factual_class" in data.columns:
        if data.empty:
            raise ValueError("the training data has no rows (data creation warned why: too few sentences with "
                             "the targets of two classes); add base data")
        counts = {str(c): int(n) for c, n in data["factual_class"].astype(str).value_counts().items()}
    else:
        return
    wanted = [str(c) for c in target_classes] if target_classes else list(counts)
    empty = [c for c in wanted if counts.get(c, 0) == 0]
    if empty:
        raise ValueError(f"class {empty[0]!r} has no training rows (rows per class: {counts}); training needs rows "
                         "of both target classes: add base data containing its targets")


class TextPredictionTrainer:
    """Train a GRADIEND for a pair of classes on masked-token prediction.

    ``model``: a base-model folder or id (loaded offline), or a :class:`ModelWithGradiend` whose
    base model, tokenizer and objective are reused. ``data`` and every other
    :class:`TextPredictionConfig` field can be given as keywords or as a full ``config``.
    """

    def __init__(self, model, data=None, eval_neutral_data=None, args: TrainingArguments | None = None,
                 config=None, target_classes=None, *, training_args: TrainingArguments | None = None,
                 progress: bool = True, **config_kwargs):
        from gradiend.data.ingest import TextPredictionConfig

        if args is not None and training_args is not None:
            raise ValueError("pass args or training_args, not both")
        self.args = args or training_args or TrainingArguments()
        if not isinstance(self.args, TrainingArguments):
            raise TypeError(f"args must be a TrainingArguments, got {type(self.args).__name__}")
        overrides = {k: v for k, v in {"data": data, "eval_neutral_data": eval_neutral_data,
                                       "target_classes": target_classes, **config_kwargs}.items() if v is not None}
        if config is None:
            config = TextPredictionConfig.from_dict(overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.model = model
        self.progress = progress
        self.model_with_gradiend = None
        self.training_stats: dict | None = None
        self.seed_report: dict | None = None
        self._table = None
        self._base = None
        self._pre_prune: PrePruneResult | None = None
        self._evaluator = None

    # ------------------------------------------------------------------ data
    @property
    def training_table(self):
        """The unified table (read once); a target class without rows is refused first, by name."""
        if self._table is None:
            from gradiend.data.ingest import load_training_table

            check_class_rows(self.config.data, self.config.target_classes)
            self._table = load_training_table(self.config)
        return self._table

    @property
    def target_classes(self) -> tuple[str, str]:
        classes = self.config.target_classes or self.training_table.attrs.get("target_classes")
        if not classes:
            present = sorted(set(self.training_table["factual_class"]))
            raise ValueError(f"cannot infer the target pair from classes {present}; pass target_classes=[c0, c1]")
        return tuple(classes)

    def train_rows(self, seed: int | None = None) -> Rows:
        """Training rows sampled with ``seed`` (the run's seed; None: ``args.seed``)."""
        args = self.args
        return training_rows(self.training_table, self.target_classes, args.source,
                             add_identity=args.add_identity_for_other_classes, max_size=args.train_max_size,
                             seed=args.seed if seed is None else seed)

    def eval_rows(self, seed: int | None = None) -> Rows | None:
        """In-training evaluation rows sampled with ``seed`` (the run's seed; None: ``args.seed``)."""
        if not self.args.do_eval:
            return None
        return evaluation_rows(self.training_table, self.target_classes, self.args.source,
                               max_size=self.args.encoder_eval_max_size, seed=self.args.seed if seed is None else seed)

    @property
    def eval_neutral_data(self):
        from gradiend.data.ingest import load_eval_neutral_data

        return load_eval_neutral_data(self.config)

    # ------------------------------------------------------------------ base model
    @property
    def device(self) -> torch.device:
        return torch.device(self.args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def base(self):
        """``(base model, tokenizer, objective, base model id)``, loaded once."""
        if self._base is None:
            from gradiend.model.with_gradiend import ModelWithGradiend

            if isinstance(self.model, ModelWithGradiend):
                mwg = self.model
                self._base = (mwg.base_model, mwg.tokenizer, mwg.objective, mwg.base_model_id)
            else:
                from gradiend.model.loading import load_base_model

                model, tokenizer, objective = load_base_model(
                    self.model, torch_dtype=self.args.torch_dtype, trust_remote_code=self.args.trust_remote_code,
                    device=self.device)
                self._base = (model, tokenizer, objective, str(self.model))
        return self._base

    def _mapped_parameters(self):
        from gradiend.model.backbone import mapped_parameters

        return mapped_parameters(self.base()[0], self.args.params)

    # ------------------------------------------------------------------ pruning
    def compute_pre_prune_mask(self) -> PrePruneResult:
        """Pre-pruning importance and mask (``args.pre_prune_config``), shared by every seed."""
        config = self.args.pre_prune_config
        if config is None:
            raise ValueError("compute_pre_prune_mask needs TrainingArguments.pre_prune_config")
        rows = self.train_rows(config.seed)
        model, tokenizer, objective, _ = self.base()
        self._pre_prune = compute_pre_prune_mask(model, tokenizer, objective, self._mapped_parameters(),
                                                 rows.frame, config, seed=self.args.seed,
                                                 max_length=self.args.max_length)
        return self._pre_prune

    def _resolve_pre_prune(self, given) -> PrePruneResult | None:
        if isinstance(given, PrePruneResult):
            return given
        if given is not None:
            return PrePruneResult.load(given)
        if self.args.pre_prune_config is None:
            return None
        return self._pre_prune or self.compute_pre_prune_mask()

    # ------------------------------------------------------------------ model
    def create_model_with_gradiend(self, seed: int, pre_prune: PrePruneResult | None = None):
        """A fresh GRADIEND for ``seed`` over the loaded base model, built at the pre-pruned size."""
        from gradiend.model.param_mapped import ParamMappedGradiendModel, spec_from_indices
        from gradiend.model.text import TextModelWithGradiend

        model, tokenizer, objective, base_id = self.base()
        params = self._mapped_parameters()
        shapes = {name: tuple(p.shape) for name, p in params.items()}
        param_map: dict[str, Any] = dict(shapes)
        if pre_prune is not None:
            mask = pre_prune.ordered_as(list(params)).mask
            param_map = {}
            for name, shape in shapes.items():
                spec = spec_from_indices(shape, mask[name].reshape(-1).nonzero().reshape(-1))
                if spec is not None:
                    param_map[name] = spec
        args = self.args
        set_seed(seed)
        gradiend = ParamMappedGradiendModel(
            param_map, latent_dim=args.latent_dim, activation_encoder=args.activation_encoder,
            activation_decoder=args.activation_decoder, bias_decoder=args.bias_decoder, torch_dtype=torch.float32,
            device=next(model.parameters()).device, base_layout=shapes)
        c0, c1 = self.target_classes
        gradiend.metadata = {"target_classes": [c0, c1], "seed": seed, "gradiend_version": __version__}
        directions = {str(c): 0 for c in self.training_table.attrs.get("all_classes") or ()}
        directions.update({c0: 1, c1: -1})
        return TextModelWithGradiend(model, gradiend, tokenizer=tokenizer, objective=objective, source=args.source,
                                 target=args.target, feature_class_encoding_direction=directions,
                                 base_model_id=base_id, max_length=args.max_length)

    # ------------------------------------------------------------------ one seed
    def train_seed(self, seed: int, output_dir=None, pre_prune_importance=None) -> TrainResult:
        """Train one seed; save to ``output_dir`` (else ``args.output_dir`` / ``<experiment_dir>/model``
        when training a single seed; else keep it in memory only).

        ``pre_prune_importance``: a :class:`PrePruneResult` or a folder written by
        :meth:`PrePruneResult.save`; None computes it when ``args.pre_prune_config`` is set.
        """
        started = time.perf_counter()
        args = self.args
        rows = self.train_rows(seed)  # a run is a function of its own seed: the workflow's job per seed
        names = rows.transition_names
        scheduler = BatchScheduler(rows.frame[FEATURE_CLASS_ID].tolist(), rows.frame[TRAINING_LABEL].tolist(),
                                   args.train_batch_size, seed, group_names=names)
        eval_rows = self.eval_rows(seed)
        probe = None if eval_rows is None else EncoderProbe(eval_rows, self.target_classes, args.source,
                                                            args.eval_batch_size, self.progress)
        pre_prune = self._resolve_pre_prune(pre_prune_importance)
        mwg = self.create_model_with_gradiend(seed, pre_prune)
        run = TrainingRun(mwg, scheduler, rows, probe, args, self.target_classes, self.progress)
        outcome = run.run()
        trained_dim = mwg.gradiend.input_dim
        post = args.post_prune_config
        if post is not None:
            mwg.prune_gradiend(topk=post.topk, threshold=post.threshold, part=post.part)
        training = outcome.history.to_dict(
            best_step=outcome.best_step, convergence=outcome.convergence.to_dict(),
            training_args={k: v for k, v in args.to_dict().items() if k not in _LOCATION_ARGS},
            extra={"seed": seed, "source": args.source, "target": args.target,
                   "total_steps": outcome.total_steps, "batches_per_epoch": outcome.batches_per_epoch,
                   "epochs": outcome.total_steps / outcome.batches_per_epoch,
                   "train_rows": len(rows), "eval_rows": 0 if eval_rows is None else len(eval_rows),
                   "eval_split": None if eval_rows is None else eval_rows.split,
                   "transitions": {str(k): v for k, v in names.items()},
                   "input_dim": {"unpruned": mwg.unpruned_length, "trained": trained_dim,
                                 "final": mwg.gradiend.input_dim},
                   "gradiend_version": __version__})
        timing = {**outcome.timing, "total_s": time.perf_counter() - started,
                  "seconds_per_step": outcome.timing["train_s"] / outcome.total_steps}
        target_dir = output_dir if output_dir is not None else self._final_dir()
        if target_dir is not None:
            with atomic_dir(target_dir) as tmp:
                mwg.save_pretrained(tmp, training=training)
                write_json(Path(tmp) / TIMING_FILE, timing)
        info = outcome.convergence
        logger.info("seed %d: %s (best step %s, correlation %s)", seed, info.reason, info.best_step,
                    info.best_correlation)
        self.model_with_gradiend, self.training_stats = mwg, training
        return TrainResult(seed, None if target_dir is None else Path(target_dir), training, info, mwg)

    # ------------------------------------------------------------------ all seeds
    def _final_dir(self) -> Path | None:
        if self.args.output_dir is not None:
            return Path(self.args.output_dir)
        if self.args.experiment_dir is not None:
            return Path(self.args.experiment_dir) / "model"
        return None

    def train(self) -> TrainResult:
        """Train ``max_seeds`` seeds (stopping once ``min_convergent_seeds`` converged) and keep the best.

        With several seeds, each goes to ``<experiment_dir>/seeds/seed_<s>`` (a temporary folder
        without ``experiment_dir``), ``seed_report.json`` records all of them, and the best seed's
        checkpoint is copied to the final model folder.
        """
        args = self.args
        if args.max_seeds == 1:
            result = self.train_seed(args.seed)
            check_enough_convergent([SeedRun(result.seed, result.converged, result.best_correlation)],
                                    args.min_convergent_seeds, args.fail_on_non_convergence)
            return result
        if args.experiment_dir is not None:
            return self._train_seeds(Path(args.experiment_dir) / "seeds")
        with tempfile.TemporaryDirectory(prefix="gradiend-seeds-") as tmp:
            return self._train_seeds(Path(tmp))

    def _train_seeds(self, seeds_dir: Path) -> TrainResult:
        args = self.args
        results: dict[int, TrainResult] = {}

        def train_one(seed: int) -> SeedRun:
            result = self.train_seed(seed, output_dir=seeds_dir / f"seed_{seed}")
            results[seed] = dataclasses.replace(result, model_with_gradiend=None)  # free the GRADIEND
            return SeedRun(seed, result.converged, result.best_correlation,
                           eval_score=self._validation_correlation(result.model_dir),
                           model_dir=str(result.model_dir), reason=result.convergence.reason)

        runs, early = run_seeds(train_one, seeds_to_try(args.seed, args.max_seeds), args.min_convergent_seeds)
        self.seed_report = build_seed_report(
            runs, max_seeds=args.max_seeds, min_convergent_seeds=args.min_convergent_seeds,
            score_threshold=args.convergent_score_threshold,
            mean_by_class_threshold=args.convergent_mean_by_class_threshold, early_stop_reason=early)
        write_json(seeds_dir / SEED_REPORT_FILE, {**self.seed_report, "runs": [
            {**r, "model_dir": Path(r["model_dir"]).name} for r in self.seed_report["runs"]]})
        best, _ = select_best_seed(runs)
        best_dir = Path(best.model_dir)
        final = self._final_dir()
        if final is not None:
            with atomic_dir(final) as tmp:
                shutil.copytree(best_dir, tmp, dirs_exist_ok=True)
        self.model_with_gradiend = self.load_trained(final or best_dir)
        self.training_stats = load_training_stats(final or best_dir)
        check_enough_convergent(runs, args.min_convergent_seeds, args.fail_on_non_convergence)
        return dataclasses.replace(results[best.seed], model_dir=final,
                                   model_with_gradiend=self.model_with_gradiend)

    def _validation_correlation(self, model_dir) -> float:
        """What seeds are ranked by (as in the workflow's ``evaluate_encoder`` / ``select_seed``): the
        saved checkpoint's encoder correlation on the validation rows."""
        from gradiend.evaluation.encoder import EncoderEvaluator

        self.model_with_gradiend = self.load_trained(model_dir)
        return EncoderEvaluator(self.evaluation_parts()).validation_correlation(
            self.args.seed_selection_eval_max_size)[0]

    def load_trained(self, model_dir):
        """A saved GRADIEND checkpoint over this trainer's loaded base model."""
        from gradiend.model.with_gradiend import ModelWithGradiend

        model, tokenizer, objective, base_id = self.base()
        mwg = ModelWithGradiend.from_pretrained(base_model=model, gradiend_model=model_dir, tokenizer=tokenizer,
                                                objective=objective, max_length=self.args.max_length)
        mwg.base_model_id = base_id
        return mwg

    # ------------------------------------------------------------------ results
    def plot_training_convergence(self, output_path=None, title: str | None = None):
        """Figure of the last trained run's ``training.json`` (see :mod:`gradiend.plots.convergence`)."""
        from gradiend.plots.convergence import plot_training_convergence

        if self.training_stats is None:
            raise ValueError("no training statistics yet: call train() first")
        if output_path is None and self.args.experiment_dir is not None:
            output_path = Path(self.args.experiment_dir) / "training_convergence.png"
        return plot_training_convergence(self.training_stats, output_path, title=title)

    def evaluation_parts(self):
        """What the evaluators need from this trainer (see :mod:`gradiend.evaluation.context`)."""
        from gradiend.evaluation.context import EVALUATION_SEED, EvaluationParts

        if self.model_with_gradiend is None:
            raise ValueError("no trained GRADIEND yet: call train() first")
        args, config = self.args, self.config
        return EvaluationParts(
            model_with_gradiend=self.model_with_gradiend, data=self.training_table,
            neutral_data=self.eval_neutral_data, target_classes=list(self.target_classes), seed=EVALUATION_SEED,
            batch_size=args.eval_batch_size,
            excluded_words=list(config.eval_neutral_additional_excluded_words or ()),
            ignore_tokens=config.decoder_eval_ignore_tokens, output_dir=args.experiment_dir,
            encoder_max_size=args.encoder_eval_max_size,
            decoder_max_size_training_like=args.decoder_eval_max_size_training_like,
            decoder_max_size_neutral=args.decoder_eval_max_size_neutral, decoder_lrs=args.decoder_eval_lrs,
            decoder_feature_factors=args.decoder_eval_feature_factors, img_format=config.img_format)


    # ------------------------------------------------------------------ evaluation (delegated)
    @property
    def evaluator(self):
        """The :class:`gradiend.evaluation.evaluator.Evaluator` bound to this trainer."""
        if self._evaluator is None:
            from gradiend.evaluation.evaluator import Evaluator

            self._evaluator = Evaluator(self)
        return self._evaluator

    def evaluate_encoder(self, *args, **kwargs) -> dict:
        """See :meth:`Evaluator.evaluate_encoder`."""
        return self.evaluator.evaluate_encoder(*args, **kwargs)

    def evaluate_decoder(self, *args, **kwargs) -> dict:
        """See :meth:`Evaluator.evaluate_decoder`."""
        return self.evaluator.evaluate_decoder(*args, **kwargs)

    def rewrite_base_model(self, *args, **kwargs):
        """See :meth:`Evaluator.rewrite_base_model`."""
        return self.evaluator.rewrite_base_model(*args, **kwargs)
