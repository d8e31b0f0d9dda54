"""``TextPredictionTrainer``: data in, trained GRADIEND out (one seed or several); a thin facade.

It reads the data and loads the base model once, shares the pre-pruning mask between seeds, and
hands a seed to :mod:`.one_seed` and several to :func:`.seeds.train_seeds`. Every data problem is
reported before the model is loaded, and an absent device or a dtype the devices cannot run when the
trainer is made.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from functools import cached_property
from pathlib import Path

import torch

from gradiend.data.rows import Rows, check_class_rows, evaluation_rows, training_rows
from gradiend.training.arguments import TrainingArguments
from gradiend.training.history import load_training_stats
from gradiend.training.one_seed import TrainResult, build_model_with_gradiend, train_one_seed
from gradiend.training.pruning import PrePruneResult, compute_pre_prune_mask
from gradiend.training.seeds import SeedRun, check_enough_convergent, train_seeds
from gradiend.util.devices import check_devices, default_device

__all__ = ["TextPredictionTrainer", "TrainResult", "check_class_rows"]


class TextPredictionTrainer:
    """Train a GRADIEND for a pair of classes on masked-token prediction.

    ``model``: a base-model folder or id (loaded offline), or a :class:`ModelWithGradiend` whose
    base model, tokenizer and objective are reused. ``data`` and every other
    :class:`TextPredictionConfig` field can be given as keywords or as a full ``config``.

    Before a base model is loaded, its memory plan (:mod:`gradiend.model.memory_plan`: pre-pruning,
    training and scoring peaks from the model's config) is printed (stderr with ``progress``, else
    the log), and a run that would not fit ``max_memory`` GiB (a number for every memory pool, or
    ``{"cpu": 64, "cuda": 80}``; None: what the host and the GPUs have free now) on its host or on a GPU
    stops with the numbers and the ways out (:class:`~gradiend.model.memory_plan.MemoryPlanError`).
    """

    def __init__(self, model, data=None, eval_neutral_data=None, args: TrainingArguments | None = None,
                 config=None, target_classes=None, *, training_args: TrainingArguments | None = None,
                 progress: bool = True, max_memory: float | dict[str, float] | None = None, **config_kwargs):
        from gradiend.data.ingest import TextPredictionConfig

        if args is not None and training_args is not None:
            raise ValueError("pass args or training_args, not both")
        self.args = args or training_args or TrainingArguments()
        if not isinstance(self.args, TrainingArguments):
            raise TypeError(f"args must be a TrainingArguments, got {type(self.args).__name__}")
        check_devices("TrainingArguments", device=self.args.device, device_map=self.args.device_map,
                      gradiend_device=self.args.gradiend_device, torch_dtype=self.args.torch_dtype)
        overrides = {k: v for k, v in {"data": data, "eval_neutral_data": eval_neutral_data,
                                       "target_classes": target_classes, **config_kwargs}.items() if v is not None}
        if config is None:
            config = TextPredictionConfig.from_dict(overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.model = model
        self.progress = progress
        self.max_memory = max_memory
        self.memory_plan = None
        self.model_with_gradiend = None
        self.training_stats: dict | None = None
        self.seed_report: dict | None = None
        self._base = None
        self._pre_prune: PrePruneResult | None = None
        self._given_pre_prune: PrePruneResult | None = None  # a mask handed to train_seed (the plan's size)

    @cached_property
    def training_table(self):
        """The unified table (read once); a target class without rows is refused first, by name."""
        from gradiend.data.ingest import load_training_table

        check_class_rows(self.config.data, self.config.target_classes)
        return load_training_table(self.config)

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

    @property
    def device(self) -> torch.device | None:
        """Where the base model goes: ``args.device``, else the GPU if any; None when ``args.device_map`` places it."""
        if self.args.device_map is not None:
            return None
        return torch.device(self.args.device or default_device())

    def base(self):
        """``(base model, tokenizer, objective, base model id)``, loaded once."""
        if self._base is None:
            from gradiend.model.with_gradiend import ModelWithGradiend

            if isinstance(self.model, ModelWithGradiend):
                mwg = self.model
                self._base = (mwg.base_model, mwg.tokenizer, mwg.objective, mwg.base_model_id)
            else:
                from gradiend.model.loading import load_base_model

                self.memory_plan = self._check_memory()
                self._base = (*load_base_model(self.model, torch_dtype=self.args.torch_dtype, device=self.device,
                                               device_map=self.args.device_map,
                                               trust_remote_code=self.args.trust_remote_code), str(self.model))
        return self._base

    def _check_memory(self):
        """The memory plan of this run, from the model's config alone (module docstring of
        :mod:`gradiend.model.memory_plan`); refuses a run that would not fit, and a ``params``
        pattern that matches nothing, before any weight is read."""
        import sys

        from gradiend.model.loading import load_meta_model
        from gradiend.model.memory_plan import ensure_fits
        from gradiend.util.logging import get_logger

        args = self.args
        meta, tokenizer, _ = load_meta_model(self.model, torch_dtype=args.torch_dtype,
                                             trust_remote_code=args.trust_remote_code)
        known = self._pre_prune or self._given_pre_prune
        has_data = self.config.data is not None or self.config.hf_dataset is not None
        longest = max(self.training_table["masked"].astype(str), key=len, default="") if has_data else None

        def report(lines):
            if self.progress:
                print("\n".join(lines), file=sys.stderr)
            else:
                get_logger(__name__).info("\n".join(lines))

        return ensure_fits(meta, max_memory=self.max_memory, running_here=True, report=report, label=str(self.model),
                           device=self.device, device_map=args.device_map, gradiend_device=args.gradiend_device,
                           params=args.params, pre_prune=None if known else args.pre_prune_config,
                           n_kept=known.n_kept if known else None, latent_dim=args.latent_dim,
                           train_batch_size=args.train_batch_size, eval_batch_size=args.eval_batch_size,
                           tokens=None if longest is None else len(tokenizer(longest)["input_ids"]) + 2)

    def _training_base(self):
        """``base()``, refusing by name a target word its tokenizer cannot represent (nothing to learn)."""
        from gradiend.data.tables import target_words_by_class
        from gradiend.model.loading import check_target_words

        base = self.base()
        check_target_words(base[1], target_words_by_class(self.training_table), where="the training data")
        return base

    def _mapped_parameters(self):
        from gradiend.model.backbone import mapped_parameters

        return mapped_parameters(self.base()[0], self.args.params)

    def compute_pre_prune_mask(self) -> PrePruneResult:
        """Pre-pruning importance and mask (``args.pre_prune_config``), shared by every seed."""
        config = self.args.pre_prune_config
        if config is None:
            raise ValueError("compute_pre_prune_mask needs TrainingArguments.pre_prune_config")
        rows = self.train_rows(config.seed)
        model, tokenizer, objective, _ = self._training_base()
        result = compute_pre_prune_mask(model, tokenizer, objective, self._mapped_parameters(), rows.frame,
                                        config, seed=self.args.seed, max_length=self.args.max_length)
        self._pre_prune = result.without_importance()  # training needs the kept entries, not the importance
        return result

    def _resolve_pre_prune(self, given) -> PrePruneResult | None:
        if isinstance(given, PrePruneResult):
            self._given_pre_prune = given
            return given
        if given is not None:
            self._given_pre_prune = PrePruneResult.load(given, importance=False)
            return self._given_pre_prune
        if self.args.pre_prune_config is None:
            return None
        if self._pre_prune is None:
            self.compute_pre_prune_mask()  # keeps the kept entries; the importance is released here
        return self._pre_prune

    def create_model_with_gradiend(self, seed: int, pre_prune: PrePruneResult | None = None):
        """A fresh GRADIEND for ``seed`` over the loaded base model, built at the pre-pruned size."""
        return build_model_with_gradiend(self._training_base(), self._mapped_parameters(), self.args, self.target_classes,
                                         self.training_table.attrs.get("all_classes"), seed, pre_prune)

    def train_seed(self, seed: int, output_dir=None, pre_prune_importance=None) -> TrainResult:
        """Train one seed into ``output_dir`` (None: the final model folder, if any).

        ``pre_prune_importance``: a :class:`PrePruneResult` or a folder written by
        :meth:`PrePruneResult.save`; None computes it when ``args.pre_prune_config`` is set.
        """
        started = time.perf_counter()
        rows = self.train_rows(seed)  # a run is a function of its own seed: the workflow's job per seed
        eval_rows = self.eval_rows(seed)
        make_model = lambda: self.create_model_with_gradiend(seed, self._resolve_pre_prune(pre_prune_importance))
        result = train_one_seed(make_model, seed, rows, eval_rows, self.args, self.target_classes,
                                output_dir if output_dir is not None else self._final_dir(), self.progress, started)
        self.model_with_gradiend, self.training_stats = result.model_with_gradiend, result.training
        return result

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

        def train_one(seed: int, folder: Path) -> SeedRun:
            result = self.train_seed(seed, output_dir=folder)
            results[seed] = dataclasses.replace(result, model_with_gradiend=None)  # free the GRADIEND
            return SeedRun(seed, result.converged, result.best_correlation,
                           eval_score=self._validation_correlation(result.model_dir),
                           model_dir=str(result.model_dir), reason=result.convergence.reason)

        final = self._final_dir()
        runs, self.seed_report, best, checkpoint = train_seeds(train_one, args, seeds_dir, final)
        self.model_with_gradiend = self.load_trained(checkpoint)
        self.training_stats = load_training_stats(checkpoint)
        check_enough_convergent(runs, args.min_convergent_seeds, args.fail_on_non_convergence)
        return dataclasses.replace(results[best.seed], model_dir=final,
                                   model_with_gradiend=self.model_with_gradiend)

    def _validation_correlation(self, model_dir) -> float:
        """What seeds are ranked by, as in the workflow's ``select_seed``: the saved checkpoint's
        encoder correlation on the validation rows."""
        from gradiend.evaluation.encoder import EncoderEvaluator

        self.model_with_gradiend = self.load_trained(model_dir)
        return EncoderEvaluator(self.evaluation_parts()).validation_correlation(
            self.args.seed_selection_eval_max_size)[0]

    def load_trained(self, model_dir):
        """A saved GRADIEND checkpoint over this trainer's loaded base model."""
        from gradiend.model.with_gradiend import ModelWithGradiend

        model, tokenizer, objective, base_id = self.base()
        mwg = ModelWithGradiend.from_pretrained(base_model=model, gradiend_model=model_dir, tokenizer=tokenizer,
                                                objective=objective, max_length=self.args.max_length,
                                                gradiend_device=self.args.gradiend_device)
        mwg.base_model_id = base_id
        return mwg

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

    @cached_property
    def evaluator(self):
        """The :class:`gradiend.evaluation.evaluator.Evaluator` bound to this trainer."""
        from gradiend.evaluation.evaluator import Evaluator

        return Evaluator(self)

    def evaluate_encoder(self, *args, **kwargs) -> dict:
        """See :meth:`Evaluator.evaluate_encoder`."""
        return self.evaluator.evaluate_encoder(*args, **kwargs)

    def evaluate_decoder(self, *args, **kwargs) -> dict:
        """See :meth:`Evaluator.evaluate_decoder`."""
        return self.evaluator.evaluate_decoder(*args, **kwargs)

    def rewrite_base_model(self, *args, **kwargs):
        """See :meth:`Evaluator.rewrite_base_model`."""
        return self.evaluator.rewrite_base_model(*args, **kwargs)
