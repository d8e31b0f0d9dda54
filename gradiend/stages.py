"""One function per workflow stage: read files, write files (DESIGN.md §2).

The Snakemake scripts under ``workflow/scripts/`` call exactly one of these; a notebook can call
them too. Every stage has the signature ``(config, *, <inputs>, <outputs>, [wildcard values])``:

- ``config`` is the resolved experiment config (``gradiend.workflow_config.load_and_validate``), or
  the cut of it the workflow passes (``workflow_config.stage_config``: the same nesting, only the
  keys listed under "Config" below). A stage reads no other key, so a change of any other key
  does not rerun it.
- inputs and outputs are paths (``str``); outputs are written atomically (``gradiend.util.io``),
  parent folders are created as needed, and a folder output is replaced as a whole.
- ``config["base_model_path"]`` is what to load the base model from: a local folder or a Hugging
  Face Hub id (``demo:<name>`` is already resolved to ``<results_dir>/_demo/models/<name>``).
  ``config["trust_remote_code"]`` is passed on to every loader.

Class conventions: ``config["data"]["target_classes"] = [c0, c1]``; c0 is the +1 class. A rewrite
target is a class id (strengthen it) or ``<class>_weaken`` (weaken it).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator, Sequence

from gradiend.util.logging import get_logger

logger = get_logger(__name__)

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _not_yet(stage: str):
    raise NotImplementedError(f"stage {stage} not implemented yet")


@contextlib.contextmanager
def rule_context(log_path: str, threads: int | None = None) -> Iterator[None]:
    """Run a stage inside a Snakemake job: log to ``log_path``, use at most ``threads`` CPU threads.

    Everything the ``gradiend`` loggers and Python warnings emit goes to the rule's log file (and
    still to stderr); an exception is logged with its traceback before it propagates, so the log
    alone explains a failed job.
    """
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    watched = [logging.getLogger("gradiend"), logging.getLogger("py.warnings")]
    previous_levels = [w.level for w in watched]
    for watched_logger in watched:
        watched_logger.addHandler(handler)
        watched_logger.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield
    except BaseException:
        logger.exception("stage failed")
        raise
    finally:
        logging.captureWarnings(False)
        for watched_logger, level in zip(watched, previous_levels):
            watched_logger.removeHandler(handler)
            watched_logger.setLevel(level)
        handler.close()


# --- demo assets (no experiment: ``config`` is a section of the top-level ``demo`` key) ----------

def demo_corpus(config: dict, *, corpus: str) -> None:
    """Write the generated English demo corpus, one sentence per line.

    Config: ``demo.corpus`` = ``{n_sentences, seed}``.
    Writes: ``corpus`` (text file; ``gradiend.data.demo_corpus.write_demo_corpus``).
    """
    from gradiend.data.demo_corpus import write_demo_corpus

    write_demo_corpus(corpus, n_sentences=config["n_sentences"], seed=config["seed"])


def demo_model(config: dict, *, corpus: str, model_dir: str) -> None:
    """Build and pre-train one tiny demo model on the demo corpus.

    Config: ``demo.models.<name>`` = ``{kind: masked|causal, steps, seed}`` (``steps: null`` = the
    pre-training default for the kind).
    Reads: ``corpus``. Writes: ``model_dir``, a Hugging Face model folder (config, safetensors
    weights, tokenizer) that ``base_model: demo:<name>`` loads.
    """
    from gradiend.demo.pretrain import build_demo_model

    build_demo_model(config["kind"], model_dir, corpus, steps=config["steps"], seed=config["seed"])


# --- data ----------------------------------------------------------------------------------------

def create_training_data(config: dict, *, texts: str | None, training: str, summary: str) -> None:
    """Filter, mask and split the raw texts into the unified training table.

    Config: ``data.{source, max_texts, seed, preprocess, spacy_model, feature_targets,
    target_classes, max_size_per_class, min_left_context_words, balance, split_ratios,
    max_counterfactuals_per_sentence}``.
    Reads: ``texts``, the local raw-text file when ``data.source`` is ``demo`` (the demo corpus) or
    ``{path: ...}`` (``.txt`` one text per line, ``.csv``/``.parquet`` with ``text_column``);
    ``None`` for ``{hf_dataset: ...}`` and ``{texts: [...]}``, which are read from the config.
    Writes:
      - ``training``: Parquet, one row per (masked text, alternative) with the columns ``masked,
        split, factual, alternative, factual_class, alternative_class`` (docs/internals.md);
        every class in ``feature_targets`` appears, splits are ``train/validation/test``;
      - ``summary``: JSON ``{"rows": {class: {split: n}}, "total": n, "target_classes": [...],
        "texts_read": n}``.
    Fails before writing anything when a target class has too few rows or a target never occurs.
    """
    _not_yet("create_training_data")


def create_neutral_data(config: dict, *, texts: str | None, neutral: str) -> None:
    """Collect texts that contain no target word of any class (for LMS and neutral encoding).

    Config: ``data.{source, max_texts, seed, preprocess, spacy_model, feature_targets, neutral}``
    (``neutral.{max_size, additional_excluded_words, excluded_spacy_tags}``).
    Reads: ``texts`` as in :func:`create_training_data`.
    Writes: ``neutral``: Parquet with the single column ``text``.
    """
    _not_yet("create_neutral_data")


# --- training ------------------------------------------------------------------------------------

def pre_prune(config: dict, *, training: str, importance: str, mask: str, summary: str) -> None:
    """Score every base-model entry by its mean source gradient and keep the top ones.

    Config: ``base_model, base_model_path, trust_remote_code, data.target_classes, pre_prune.{n_samples,
    topk, threshold, source, batch_size, seed}`` (``seed: null`` = ``seeds[0]``), ``seeds``,
    ``training.{params, torch_dtype, max_length, train_max_size}``.
    Reads: ``training`` (rows of the ``train`` split of the two target classes).
    Writes:
      - ``importance``: safetensors, one float32 tensor per mapped base parameter (its shape);
      - ``mask``: safetensors, one bool tensor per mapped base parameter (True = kept);
      - ``summary``: JSON ``{"input_dim": n, "kept": k, "topk": ..., "threshold": ..., "source": ...,
        "n_samples": ..., "per_parameter": {name: kept}}``.
    """
    _not_yet("pre_prune")


def train_seed(config: dict, *, seed: int, training: str, mask: str | None, model: str,
               convergence: str) -> None:
    """Train one GRADIEND for one seed (then post-prune it when configured).

    Config: ``base_model, base_model_path, trust_remote_code, data.target_classes``, all of
    ``training`` (TrainingArguments fields), ``post_prune`` (null or ``{topk, threshold, part}``).
    Reads: ``training`` (``train`` split for steps, ``validation`` split for in-training encoder
    evaluation); ``mask`` from :func:`pre_prune` or ``None`` (no pre-pruning).
    Writes:
      - ``model``: a GRADIEND checkpoint folder: ``config.json`` (architecture, parameter mapping,
        metadata incl. base model, seed, target classes), ``model.safetensors``, ``training.json``
        (the full evaluation history, the best step, and ``convergence`` = {converged, reasons});
      - ``convergence``: PNG of correlation and mean encoding per class over the steps.
    A non-convergent run is written like any other (selection decides); NaN/inf gradients raise
    with the step number.
    """
    _not_yet("train_seed")


def evaluate_encoder(config: dict, *, seed: int, model: str, training: str, neutral: str,
                     metrics: str, encoded: str, distributions: str) -> None:
    """Encode the test split and neutral texts with one seed's GRADIEND.

    Config: ``base_model, base_model_path, trust_remote_code, data.target_classes,
    data.neutral.additional_excluded_words, training.{source, eval_batch_size,
    encoder_eval_max_size, seed_selection_eval_max_size, torch_dtype, max_length}``.
    Reads: ``model`` (checkpoint from :func:`train_seed`), ``training`` (``test`` and ``validation``
    splits), ``neutral``.
    Writes:
      - ``metrics``: JSON with ``correlation`` (Pearson of encoding vs. ±1 label on the test split),
        ``validation_correlation`` (used by :func:`select_seed`), ``mean_by_class``,
        ``accuracy``, ``neutral_mean``, ``n_by_type``;
      - ``encoded``: Parquet, one row per encoded text: ``type, split, text, label, source_class,
        encoded``;
      - ``distributions``: PNG of the encoded values per class and for neutral texts.
    """
    _not_yet("evaluate_encoder")


def select_seed(config: dict, *, seeds: Sequence[int], models: Sequence[str], metrics: Sequence[str],
                choice: str, best_model: str) -> None:
    """Pick the best seed among the convergent ones and copy its checkpoint.

    Config: ``seeds, training.{min_convergent_seeds, convergent_score_threshold,
    convergent_mean_by_class_threshold, fail_on_non_convergence}``.
    Reads: for each seed (same order as ``seeds``) its ``models[i]/training.json`` and
    ``metrics[i]``.
    Writes:
      - ``choice``: JSON ``{"seed": s, "reason": text, "convergent_seeds": [...],
        "scores": {seed: {converged, training_score, validation_correlation, test_correlation}}}``;
      - ``best_model``: a copy of the chosen seed's checkpoint folder.
    Raises when fewer than ``min_convergent_seeds`` converged and ``fail_on_non_convergence`` is
    set; otherwise falls back to the best score and says so in ``reason``.
    """
    _not_yet("select_seed")


# --- decoder -------------------------------------------------------------------------------------

def decoder_cell(config: dict, *, learning_rate: float | None, feature_factor: float | None,
                 model: str | None, training: str, neutral: str, cell: str) -> None:
    """Score one cell of the decoder grid: the base model rewritten as θ + lr·dec(ff).

    ``learning_rate`` and ``feature_factor`` are both ``None`` for the ``base`` cell (the
    unmodified model; ``model`` is then ``None`` too).
    Config: ``base_model, base_model_path, trust_remote_code, data.target_classes,
    data.neutral.additional_excluded_words, training.{source, eval_batch_size, torch_dtype,
    max_length}, decoder.{max_size_training_like, max_size_neutral, lms_max_samples}``.
    Reads: ``model`` (best checkpoint), ``training`` (``test`` split), ``neutral`` (LMS texts).
    Writes ``cell``: JSON ``{"learning_rate", "feature_factor", "lms": {...},
    "probs_by_dataset": {dataset_class: {class: p}}, "probs": {class: p on the other class's rows},
    "probs_factual": {class: p on its own rows}, "n_rows": {...}}``.
    """
    _not_yet("decoder_cell")


def select_cell(config: dict, *, base: str, cells: Sequence[str], summary: str, plot: str) -> None:
    """Choose, per target class and direction, the grid cell to rewrite with.

    Config: ``data.target_classes, training.source, decoder.feature_factors,
    decoder.selection.{policy, ratio}`` (``lms_threshold``: best metric among cells with
    LMS >= ratio·base LMS, else the smallest learning rate; ``lms_times_metric``: best metric·LMS).
    Reads: ``base`` (the base cell) and ``cells`` (every other cell; each file names its own
    learning rate and feature factor).
    Writes:
      - ``summary``: JSON ``{"<class>": {...}, "<class>_weaken": {...}}`` where each entry is
        ``{value, learning_rate, feature_factor, lms, base_lms, strengthen, cell}``, plus
        ``"base": {...}`` and ``"policy"``;
      - ``plot``: PNG of the probability shifts and LMS over the learning rates.
    """
    _not_yet("select_cell")


def rewrite_model(config: dict, *, target: str, model: str, decoder_summary: str, output_dir: str) -> None:
    """Apply the selected cell for ``target`` to the base model and save it.

    ``target`` is a class id (strengthen) or ``<class>_weaken`` (weaken).
    Config: ``base_model, base_model_path, trust_remote_code, data.target_classes, training.{source,
    torch_dtype}``.
    Reads: ``model`` (best GRADIEND checkpoint), ``decoder_summary`` (entry ``target``).
    Writes ``output_dir``: a Hugging Face model folder (config, safetensors weights, tokenizer) plus
    ``README.md`` (model card: base model, GRADIEND checkpoint, target, learning rate, feature
    factor, LMS before/after).
    """
    _not_yet("rewrite_model")


# --- records -------------------------------------------------------------------------------------

def provenance(config: dict, *, provenance_file: str) -> None:
    """Record how an experiment's results were made.

    Config: the whole resolved experiment (without ``resources``).
    Writes ``provenance_file``: JSON ``{"config": ..., "gradiend_version", "python", "platform",
    "packages": {torch, transformers, tokenizers, datasets, snakemake, ...}, "git_commit" (or
    null), "devices": [...]}`` (no timestamps, so an unchanged environment gives the same file).
    """
    _not_yet("provenance")


def report(config: dict, *, provenance_file: str, data_summary: str, prune_summary: str | None,
           seeds: Sequence[int], convergence_plots: Sequence[str], encoder_metrics: Sequence[str],
           distribution_plots: Sequence[str], seed_choice: str, decoder_summary: str,
           probability_shifts: str, rewritten: Sequence[str], report_file: str) -> None:
    """Write the experiment's Markdown report.

    Config: the whole resolved experiment (without ``resources``).
    Reads every listed file (per-seed lists in the order of ``seeds``; ``prune_summary`` is ``None``
    without pre-pruning; ``rewritten`` holds one folder per ``rewrite`` target).
    Writes ``report_file`` (``results/<experiment>/report.md``): data sizes, per-seed convergence
    and encoder metrics with the chosen seed, the decoder choice per target, the rewritten
    models, and the figures linked by paths relative to the report.
    """
    _not_yet("report")


def summary(config: dict, *, experiments: Sequence[str], data_summaries: Sequence[str],
            seed_choices: Sequence[str], decoder_summaries: Sequence[str], csv: str, tex: str) -> None:
    """One table across experiments.

    Config: ``{experiment: cut}`` with ``base_model, data.target_classes, seeds`` per experiment.
    Reads, per experiment (same order as ``experiments``): ``data_summaries[i]``,
    ``seed_choices[i]``, ``decoder_summaries[i]``.
    Writes ``csv`` and ``tex`` (a LaTeX ``tabular``): one row per experiment with the base model,
    target classes, training rows, convergent seeds / seeds, chosen seed and its test correlation,
    and per target class the chosen learning rate, feature factor, probability and LMS
    (strengthen and weaken).
    """
    _not_yet("summary")
