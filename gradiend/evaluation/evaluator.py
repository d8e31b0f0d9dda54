"""The evaluation entry point bound to a trainer or to plain parts.

``Evaluator(trainer)`` reads the trainer's :class:`~.context.EvaluationParts` at every call (so it
sees the model after training); ``Evaluator(parts)`` or ``Evaluator(model_with_gradiend=…,
data=…, neutral_data=…)`` works without a trainer, as the workflow stages do. The decoder
evaluator is kept while the model and data stay the same, so the base cell is scored once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from gradiend.cells import rewrite_key
from gradiend.evaluation.context import EvaluationParts
from gradiend.evaluation.decoder import DecoderEvaluator
from gradiend.evaluation.encoder import EncoderEvaluator
from gradiend.evaluation.model_card import save_rewritten_model
from gradiend.evaluation.selection import SelectionPolicy, summary_entry
from gradiend.model.base_source import describe_base_model


class Evaluator:
    """Encoder and decoder evaluation, plots, and rewriting for one model with its GRADIEND."""

    def __init__(self, trainer_or_parts: Any = None, **parts: Any):
        if trainer_or_parts is not None and parts:
            raise ValueError("pass either a trainer / EvaluationParts or keyword parts, not both")
        if trainer_or_parts is None:
            trainer_or_parts = EvaluationParts(**parts)
        if not isinstance(trainer_or_parts, EvaluationParts) and not callable(
                getattr(trainer_or_parts, "evaluation_parts", None)):
            raise TypeError(f"{type(trainer_or_parts).__name__} does not provide evaluation_parts(); pass "
                            "EvaluationParts (model_with_gradiend, data, neutral_data, ...) instead")
        self._source = trainer_or_parts
        self._decoder: DecoderEvaluator | None = None
        self._decoder_key: tuple | None = None
        self.last_decoder_results: dict | None = None

    @property
    def parts(self) -> EvaluationParts:
        return self._source if isinstance(self._source, EvaluationParts) else self._source.evaluation_parts()

    @property
    def encoder(self) -> EncoderEvaluator:
        return EncoderEvaluator(self.parts)

    @property
    def decoder(self) -> DecoderEvaluator:
        """The decoder evaluator; rebuilt only when the base model, data or neutral data change."""
        parts = self.parts
        key = (id(parts.model_with_gradiend.base_model), id(parts.data), hash(tuple(parts.neutral_texts or ())),
               tuple(parts.target_classes), parts.seed)
        if self._decoder is None or key != self._decoder_key:
            self._decoder, self._decoder_key = DecoderEvaluator(parts), key
            self.last_decoder_results = None  # results of another model or data must not be merged
        else:
            self._decoder.parts = parts
        return self._decoder

    def _output_dir(self, output_dir, sub: str) -> Path | None:
        if output_dir is not None:
            return Path(output_dir)
        base = self.parts.output_dir
        return None if base is None else Path(base) / sub

    # ------------------------------------------------------------------ encoder
    def evaluate_encoder(self, split: str = "test", max_size: int | None = None, plot: bool = False,
                         output_dir: str | Path | None = None, return_df: bool = False) -> dict:
        """Encoder metrics of ``split``; ``plot=True`` returns the distributions as ``result["figure"]`` and
        saves them under ``output_dir`` (default ``<experiment_dir>/encoder``) when there is one."""
        return self.encoder.evaluate(split, max_size, plot, self._output_dir(output_dir, "encoder"), return_df)

    # ------------------------------------------------------------------ decoder
    def evaluate_decoder(self, lrs: Sequence[float] | None = None, feature_factors: Sequence[float] | None = None,
                         target_class: str | Sequence[str] | None = None,
                         increase_target_probabilities: bool | None = True,
                         selector: SelectionPolicy | None = None, plot: bool = False,
                         output_dir: str | Path | None = None) -> dict:
        """Grid evaluation and cell choice for the requested direction only.

        ``increase_target_probabilities=True`` (default) → strengthen keys ``"<C>"``; ``False`` →
        weaken keys ``"<C>_weaken"``; ``None`` → both. The returned dict holds only this call's keys
        (plus ``"grid"``, ``non_finite_cells``); :attr:`last_decoder_results` accumulates every
        call's keys, so :meth:`rewrite_base_model` without ``decoder_results`` can use either direction.
        """
        results = self.decoder.evaluate_decoder(lrs, feature_factors, target_class, increase_target_probabilities,
                                                selector, plot, self._output_dir(output_dir, "decoder"))
        previous = self.last_decoder_results or {}
        self.last_decoder_results = {**previous, **results, "grid": {**previous.get("grid", {}), **results["grid"]}}
        return results

    def _decoder_results(self, given: Mapping | None) -> Mapping:
        results = given if given is not None else self.last_decoder_results
        if results is None:
            raise ValueError("no decoder results: run evaluate_decoder() first or pass decoder_results")
        return results

    # ------------------------------------------------------------------ rewriting
    def rewrite_base_model(self, decoder_results: Mapping | None = None, target_class: str | Sequence[str] | None = None,
                           increase_target_probabilities: bool = True, output_dir: str | Path | None = None,
                           feature_description: str | None = None):
        """The base model rewritten with the chosen cell of ``target_class`` (reference §6).

        One class → a Hugging Face model, or its folder when ``output_dir`` is given; several
        classes → a list, saved under ``output_dir/<key>``. Without ``decoder_results`` the results
        of this evaluator's last ``evaluate_decoder`` call are used.
        """
        results = self._decoder_results(decoder_results)
        classes = self.decoder.check_target_classes(target_class)
        entries = [summary_entry(results, c, increase_target_probabilities) for c in classes]
        mwg = self.parts.model_with_gradiend
        if output_dir is None:
            models = [mwg.rewrite_base_model(e["learning_rate"], e["feature_factor"], part=e.get("part", "decoder"))
                      for e in entries]
            return models[0] if isinstance(target_class, str) else models
        output_dir = Path(output_dir)
        base = describe_base_model(str(mwg.base_model_id))  # its weights are hashed once for every card
        if isinstance(target_class, str):
            return save_rewritten_model(mwg, entries[0], output_dir, feature_description, base=base)
        weaken = not increase_target_probabilities
        return [save_rewritten_model(mwg, e, output_dir / rewrite_key(c, weaken), feature_description, base=base)
                for c, e in zip(classes, entries)]

    # ------------------------------------------------------------------ plots
    def plot_encoder_distributions(self, encoded=None, output_path: str | Path | None = None, **options):
        """Violin plot of an encoded table (default: a fresh test-split evaluation)."""
        from gradiend.plots.encoder import plot_encoder_distributions

        if encoded is None:
            encoded = self.evaluate_encoder(return_df=True)["encoder_df"]
        return plot_encoder_distributions(encoded, output_path, **options)

    def plot_probability_shifts(self, decoder_results: Mapping | None = None, output_path: str | Path | None = None,
                                **options):
        """Probability-shift figure of decoder results (default: the last evaluate_decoder call)."""
        from gradiend.plots.decoder import plot_probability_shifts

        results = self._decoder_results(decoder_results)
        return plot_probability_shifts(results["grid"], results, output_path, **options)  # non-entries are skipped
