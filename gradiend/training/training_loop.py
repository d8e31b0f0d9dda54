"""One training run of one seed: optimiser steps, in-training evaluation, best checkpoint.

A step fits the GRADIEND to reconstruct the target gradient from the source gradient of one batch
(:class:`~gradiend.training.reconstruction.ReconstructionLoss`) and takes one AdamW step; no
schedule, no clipping. The encoder is evaluated at step 0, every ``eval_steps`` and at the last
step; a reversed encoding is flipped, and the best evaluation after step 0 is restored at the end.

Memory: the GRADIEND, its AdamW states and the step's source and target vectors, which hold its
gradients too (:mod:`~gradiend.training.reconstruction`); nothing else of input size. The best
checkpoint waits in a temporary safetensors file (under ``TMPDIR``), not in memory, and comes back
after the optimiser is released.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gradiend.training.arguments import TrainingArguments
from gradiend.training.convergence import BestCheckpoint, ConvergenceInfo, assess_convergence, should_normalise
from gradiend.training.encoder_probe import EncoderProbe
from gradiend.training.history import EvalRecord, TrainingHistory
from gradiend.training.reconstruction import ReconstructionLoss
from gradiend.data.rows import Rows
from gradiend.training.scheduler import BatchScheduler
from gradiend.util.io import iter_safetensors, save_safetensors
from gradiend.util.logging import get_logger

logger = get_logger(__name__)


class NonFiniteGradientError(RuntimeError):
    """A base-model gradient or the GRADIEND loss became NaN or infinite."""


def make_optimizer(parameters, args: TrainingArguments) -> torch.optim.Optimizer:
    """AdamW (or Adam), fused on CPU and CUDA: many times faster than the per-tensor default loop."""
    parameters = list(parameters)
    cls = torch.optim.AdamW if args.optim == "adamw" else torch.optim.Adam
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in parameters)
    return cls(parameters, lr=args.learning_rate, weight_decay=args.weight_decay, eps=args.adam_epsilon,
               fused=fused or None)


def _check_finite(vector: torch.Tensor, what: str, step: int, model_with_gradiend) -> None:
    """A finite sum is one cheap pass; the mask is built only to name the culprit."""
    if math.isfinite(float(vector.sum())):
        return
    finite = torch.isfinite(vector)
    if bool(finite.all()):
        return
    first = int((~finite).nonzero()[0])
    name = next(n for n, start, stop in model_with_gradiend.gradiend.segments() if start <= first < stop)
    raise NonFiniteGradientError(
        f"step {step}: the {what} gradient is not finite (first at parameter {name!r}); lower the learning "
        "rate, check the data rows of this batch, or load the base model in a wider dtype")


def _flip_momentum(optimizer: torch.optim.Optimizer, gradiend) -> None:
    """After inverting the GRADIEND, negate the momentum of the negated parameters (not the decoder bias)."""
    for param in (gradiend.encoder.weight, gradiend.encoder.bias, gradiend.decoder.weight):
        state = optimizer.state.get(param, {})
        if "exp_avg" in state:
            state["exp_avg"].neg_()


class TrainingRun:
    """Trains ``model_with_gradiend.gradiend`` in place on ``train_rows``."""

    def __init__(self, model_with_gradiend, scheduler: BatchScheduler, train_rows: Rows, probe: EncoderProbe | None,
                 args: TrainingArguments, target_classes: tuple[str, str], progress: bool = True):
        self.mwg = model_with_gradiend
        self.scheduler = scheduler
        self.rows = train_rows.frame
        self.probe = probe
        self.args = args
        self.target_classes = target_classes
        self.progress = progress
        self.total_steps = args.total_steps(scheduler.batches_per_epoch)
        self.history = TrainingHistory(target_classes)
        self.best = BestCheckpoint()
        self._best_folder: tempfile.TemporaryDirectory | None = None  # holds the best checkpoint's state
        self._batches: dict = {}
        self._gradient_buffers: dict[str, torch.Tensor] = {}  # input-space gradients, reused every step
        self._reconstruction = ReconstructionLoss()
        self.timing = {"prepare_s": 0.0, "train_s": 0.0, "eval_s": 0.0}

    # ------------------------------------------------------------------ batches
    def prepare_batches(self) -> None:
        """Tokenise every batch the run will use, before the first step (bad rows fail here)."""
        start = time.perf_counter()
        for key in self.scheduler.keys_used(self.total_steps):
            chunk = self.rows.iloc[self.scheduler.rows_of(key)]
            self._batches[key] = self.mwg.prepare(chunk["masked"].tolist(), chunk["factual"].tolist(),
                                                  chunk["alternative"].tolist())
        self.timing["prepare_s"] += time.perf_counter() - start

    # ------------------------------------------------------------------ steps
    def train_step(self, step: int, optimizer: torch.optim.Optimizer) -> float:
        """One optimiser step on the batch of 1-based ``step``; returns the reconstruction loss."""
        batch = self._batches[self.scheduler.key(step - 1)]
        source, target = self.mwg.source_and_target_gradients(batch, self._gradient_buffers)
        # An infinite source can vanish behind a saturated encoder activation, so it is checked
        # itself; a non-finite target always makes the loss non-finite and is looked at only then.
        _check_finite(source, f"source ({self.mwg.source})", step, self.mwg)
        loss = float(self._reconstruction(self.mwg.gradiend, source, target, consume=True))
        if not math.isfinite(loss):  # the target is the residual now: non-finite where the target was
            _check_finite(target, f"target ({self.mwg.target})", step, self.mwg)
            raise NonFiniteGradientError(f"step {step}: the GRADIEND loss is {loss}; lower the learning rate")
        self._reconstruction.step(optimizer)
        return loss

    def evaluate(self, step: int, optimizer: torch.optim.Optimizer) -> EvalRecord:
        start = time.perf_counter()
        result = self.probe.evaluate(self.mwg)
        gradiend = self.mwg.gradiend
        record = EvalRecord(step=step, correlation=result.correlation, mean_by_class=result.mean_by_class,
                            n_by_class=result.n_by_class, train_loss=self.history.mean_loss_since_last_eval(),
                            encoder_norm=gradiend.encoder_norm, decoder_norm=gradiend.decoder_norm)
        if should_normalise(record.correlation, self.args.normalize_gradiend, gradiend.latent_dim,
                            gradiend.activation_encoder):
            self.mwg.invert_encoding(update_direction=False)
            _flip_momentum(optimizer, gradiend)
            record.negate()
            logger.info("step %d: correlation %.3f < -0.6, encoding inverted", step, -record.correlation)
        self.history.evaluations.append(record)
        if self.best.update(step, record.correlation):
            if self._best_folder is None:
                self._best_folder = tempfile.TemporaryDirectory(prefix="gradiend-best-")
            save_safetensors(gradiend.state_dict(), self._best_file())
        self.timing["eval_s"] += time.perf_counter() - start
        means = ", ".join(f"{c}={m:+.3f}" for c, m in record.mean_by_class.items())
        logger.info("step %d: correlation %+.4f, mean encoded %s", step, record.correlation, means)
        return record

    def run(self) -> ConvergenceInfo:
        """Train every step; the GRADIEND ends at its best evaluation (``history``, ``best`` and
        ``timing`` hold the rest)."""
        if not self._batches:
            self.prepare_batches()
        try:
            evaluated = self._train(make_optimizer(self.mwg.gradiend.parameters(), self.args))
            self._gradient_buffers.clear()  # the optimiser, its states and the buffers are released
            for param in self.mwg.gradiend.parameters():
                param.grad = None
            if self._best_folder is not None:
                self._restore_best()
        finally:
            if self._best_folder is not None:
                self._best_folder.cleanup()
                self._best_folder = None
        return self._convergence(evaluated)

    def _train(self, optimizer: torch.optim.Optimizer) -> bool:
        """Every step with its evaluations; returns whether the encoder was evaluated."""
        self.mwg.base_model.eval()
        evaluating = self.probe is not None and self.args.do_eval
        if evaluating:
            self.evaluate(0, optimizer)
        bar = tqdm(range(1, self.total_steps + 1), desc="GRADIEND training", disable=not self.progress)
        start, eval_before = time.perf_counter(), self.timing["eval_s"]
        for step in bar:
            loss = self.train_step(step, optimizer)
            self.history.losses.append(loss)
            if evaluating and (step % self.args.eval_steps == 0 or step == self.total_steps):
                record = self.evaluate(step, optimizer)
                bar.set_postfix(loss=f"{loss:.3g}", corr=f"{record.correlation:+.3f}")
        self.timing["train_s"] = time.perf_counter() - start - (self.timing["eval_s"] - eval_before)
        bar.close()
        return evaluating

    def _best_file(self) -> Path:
        return Path(self._best_folder.name) / "best.safetensors"

    @torch.no_grad()
    def _restore_best(self) -> None:
        """The best checkpoint's state back into the GRADIEND, one tensor at a time."""
        state = self.mwg.gradiend.state_dict()
        for name, value in iter_safetensors(self._best_file()):
            state[name].copy_(value)

    def _convergence(self, evaluated: bool) -> ConvergenceInfo:
        args = self.args
        if not evaluated:
            return ConvergenceInfo(False, "not evaluated (do_eval=False)", None, None, {},
                                   args.convergent_score_threshold, args.convergent_mean_by_class_threshold)
        best = self.history.record_at(self.best.step)
        means = best.mean_by_class if best is not None else {}
        return assess_convergence(self.best.step, self.best.correlation, means, self.target_classes,
                                  args.convergent_score_threshold, args.convergent_mean_by_class_threshold)

