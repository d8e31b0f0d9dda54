"""Feature-comparison stages over experiments that share a base model (``comparisons.<name>``).

``comparison_topk`` compares the experiments' chosen GRADIENDs by their most important parameters;
``comparison_cross_encoding`` applies each experiment's encoder to every experiment's test rows.
Both write under ``results/comparisons/<name>/``. Library: :mod:`gradiend.evaluation.comparison`.
"""
from __future__ import annotations

from typing import Mapping, Sequence


def _check(config: Mapping, experiments: Sequence[str], *lists: Sequence) -> None:
    if any(len(items) != len(experiments) for items in lists):
        raise ValueError("a comparison needs one file of each kind per experiment")
    bases = {e: config["experiments"][e]["base_model"] for e in experiments}
    if len(set(bases.values())) > 1:
        raise ValueError(f"the experiments of one comparison must share their base model, got {bases}")


def comparison_topk(config: dict, *, name: str, experiments: Sequence[str], models: Sequence[str], csv: str,
                    plot: str) -> None:
    """Pairwise overlap of the experiments' top-k parameters.

    Config: ``{"comparison": {experiments, topk, part, ...}, "experiments": {experiment: {name,
    base_model}}}``.
    Reads: ``models``, each experiment's chosen GRADIEND (``best/model``), in ``experiments`` order.
    Writes ``csv`` (``topk_overlap.csv``: one row per ordered pair, :data:`TOPK_COLUMNS` =
    ``experiment_a, experiment_b, k_a, k_b, shared, overlap``; ``overlap = shared / min(k_a,
    k_b)``, indices compared in the base model's unpruned parameter space) and ``plot``
    (``topk_overlap.png``, a heat map of ``overlap``).
    """
    from gradiend.evaluation.comparison import topk_overlap, topk_sets
    from gradiend.model.param_mapped import ParamMappedGradiendModel
    from gradiend.plots.comparison import plot_topk_overlap
    from gradiend.util.io import atomic_path

    _check(config, experiments, models)
    block = config["comparison"]
    gradiends = {e: ParamMappedGradiendModel.from_pretrained(path) for e, path in zip(experiments, models)}
    frame = topk_overlap(topk_sets(gradiends, block["topk"], block["part"]))
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    plot_topk_overlap(frame, plot, title=f"{name}: top-{block['topk']} overlap ({block['part']})")


def comparison_cross_encoding(config: dict, *, name: str, experiments: Sequence[str], models: Sequence[str],
                              trainings: Sequence[str], csv: str, plot: str) -> None:
    """Each experiment's encoder applied to every experiment's test rows.

    Config: ``{"comparison": {experiments, max_size, batch_size, ...}, "experiments": {experiment:
    {name, base_model, base_model_path, trust_remote_code, data.target_classes,
    training.{torch_dtype, max_length, device_map, gradiend_device}}}}``; the base model is loaded once,
    with the first experiment's settings.
    Reads: ``models`` (each ``best/model``) and ``trainings`` (each ``data/training.parquet``), in
    ``experiments`` order; per experiment at most ``max_size`` test rows per transition (seeded).
    Writes ``csv`` (``cross_encoding.csv``, :data:`CROSS_COLUMNS` = ``encoder_experiment,
    data_experiment, factual_class, n, mean_encoded, std_encoded``) and ``plot``
    (``cross_encoding.png``: rows = encoders, columns = data experiment and class).
    """
    from gradiend.evaluation.comparison import cross_encoding, comparison_rows
    from gradiend.plots.comparison import plot_cross_encoding
    from gradiend.stages.models import EVALUATION_SEED, load_base, read_tables, target_classes, with_checkpoint
    from gradiend.util.io import atomic_path

    _check(config, experiments, models, trainings)
    block = config["comparison"]
    cuts = config["experiments"]
    datasets = {e: comparison_rows(read_tables(path)[0], target_classes(cuts[e]), block["max_size"], EVALUATION_SEED)
                for e, path in zip(experiments, trainings)}
    base = load_base(cuts[experiments[0]])
    encoders = {e: with_checkpoint(cuts[e], base, path) for e, path in zip(experiments, models)}
    frame = cross_encoding(encoders, datasets, block["batch_size"])
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    plot_cross_encoding(frame, plot, title=f"{name}: cross-encoding")
