"""Shared set-up for the stage tests: a small validated experiment on a tiny model and a corpus file.

``StageRun`` runs the stages in workflow order into a temporary folder, each with exactly the config
cut the workflow would pass (``workflow_config.stage_config``), and remembers every output path.
"""
from __future__ import annotations

from pathlib import Path

from gradiend import stages
from gradiend.cells import cell_name
from gradiend import workflow_config as wfc

EXCLUDED = ["her", "hers", "him", "his", "they", "them", "their"]


def experiment_config(base_model: Path, corpus: Path, results: Path, **overrides) -> dict:
    """A validated, resolved experiment named ``exp`` (``overrides`` replace top-level experiment keys)."""
    experiment = {
        "base_model": str(base_model),
        "data": {
            "source": {"path": str(corpus)},
            "max_size_per_class": 60,
            "feature_targets": [{"id": "F", "targets": ["she"]}, {"id": "M", "targets": ["he"]}],
            "target_classes": ["F", "M"],
            "neutral": {"max_size": 30, "additional_excluded_words": EXCLUDED},
        },
        "training": {"train_batch_size": 8, "eval_batch_size": 16, "max_steps": 6, "eval_steps": 3,
                     "learning_rate": 1.0e-3},
        "seeds": [0, 1],
        "decoder": {"learning_rates": [1.0, 0.1], "max_size_training_like": 16, "max_size_neutral": 16},
        "rewrite": ["F", "F_weaken"],
        **overrides,
    }
    resolved = wfc.load_and_validate({"results_dir": str(results), "experiments": {"exp": experiment}})
    return resolved["experiments"]["exp"]


class StageRun:
    """Paths of one experiment's outputs under ``root`` and a runner for each stage."""

    def __init__(self, experiment: dict, corpus: Path, root: Path):
        self.experiment = experiment
        self.corpus = str(corpus)
        self.root = Path(root)

    def path(self, *parts) -> str:
        return str(self.root.joinpath(*parts))

    def cut(self, stage: str) -> dict:
        return wfc.stage_config(self.experiment, stage)

    @property
    def seeds(self) -> list[int]:
        return list(self.experiment["seeds"])

    def data(self) -> None:
        stages.create_training_data(self.cut("create_training_data"), texts=self.corpus,
                                    training=self.path("data", "training.parquet"),
                                    summary=self.path("data", "summary.json"))
        stages.create_neutral_data(self.cut("create_neutral_data"), texts=self.corpus,
                                   neutral=self.path("data", "neutral.parquet"))

    def prune(self) -> None:
        stages.pre_prune(self.cut("pre_prune"), training=self.path("data", "training.parquet"),
                         importance=self.path("prune", "importance.safetensors"),
                         mask=self.path("prune", "mask.safetensors"), summary=self.path("prune", "summary.json"))

    def train(self, seed: int, pruned: bool = False) -> None:
        stages.train_seed(self.cut("train_seed"), seed=seed, training=self.path("data", "training.parquet"),
                          mask=self.path("prune", "mask.safetensors") if pruned else None,
                          model=self.path("seeds", str(seed), "model"),
                          convergence=self.path("seeds", str(seed), "convergence.png"))

    def evaluate(self, seed: int) -> None:
        folder = ("seeds", str(seed), "encoder")
        stages.evaluate_encoders(self.cut("evaluate_encoders"), seeds=[seed],
                                 models=[self.path("seeds", str(seed), "model")],
                                 training=self.path("data", "training.parquet"),
                                 neutral=self.path("data", "neutral.parquet"),
                                 metrics=[self.path(*folder, "metrics.json")],
                                 encoded=[self.path(*folder, "encoded.parquet")],
                                 distributions=[self.path(*folder, "distributions.png")])

    def select_seed(self) -> None:
        stages.select_seed(self.cut("select_seed"), seeds=self.seeds,
                           models=[self.path("seeds", str(s), "model") for s in self.seeds],
                           metrics=[self.path("seeds", str(s), "encoder", "metrics.json") for s in self.seeds],
                           choice=self.path("best", "seed.json"), best_model=self.path("best", "model"))

    def cells(self) -> dict[str, str]:
        """Cell name -> cell file, ``base`` first (the workflow's grid)."""
        return {name: self.path("decoder", "cells", f"{name}.json") for name in wfc.decoder_cells(self.experiment)}

    def decoder_cell(self, name: str) -> None:
        """One cell alone (``base`` without the checkpoint, as the fan-out's ``decoder_base`` job)."""
        stages.decoder_grid(self.cut("decoder_grid"), model=None if name == "base" else self.path("best", "model"),
                            training=self.path("data", "training.parquet"),
                            neutral=self.path("data", "neutral.parquet"), cells=[self.cells()[name]])

    def decoder_grid(self) -> None:
        """The base cell, then one job per learning rate, as the workflow's fan-out runs them."""
        cells = self.cells()
        data = {"training": self.path("data", "training.parquet"), "neutral": self.path("data", "neutral.parquet")}
        stages.decoder_grid(self.cut("decoder_grid"), model=None, cells=[cells["base"]], **data)
        factors = self.experiment["decoder"]["feature_factors"]
        for lr in self.experiment["decoder"]["learning_rates"]:
            names = [cell_name(lr, ff) for ff in factors]
            stages.decoder_grid(self.cut("decoder_grid"), model=self.path("best", "model"),
                                cells=[cells[n] for n in names], **data)

    @property
    def adaptive(self) -> bool:
        return self.experiment["decoder"]["search"] == "adaptive"

    def decoder_search(self) -> None:
        cells = self.cells()
        stages.decoder_search(self.cut("decoder_search"), model=self.path("best", "model"),
                              training=self.path("data", "training.parquet"),
                              neutral=self.path("data", "neutral.parquet"), base=cells.pop("base"),
                              cells=list(cells.values()), trials=self.path("decoder", "trials"),
                              search=self.path("decoder", "search.json"))

    def select_cell(self) -> None:
        cells = self.cells()
        stages.select_cell(self.cut("select_cell"), base=cells.pop("base"), cells=list(cells.values()),
                           seed_choice=self.path("best", "seed.json"),
                           search=self.path("decoder", "search.json") if self.adaptive else None,
                           summary=self.path("decoder", "summary.json"),
                           plot=self.path("decoder", "probability_shifts.png"),
                           tradeoff=self.path("decoder", "tradeoff.png"))

    def rewrite(self, target: str) -> None:
        stages.rewrite_models(self.cut("rewrite_models"), targets=[target], model=self.path("best", "model"),
                              decoder_summary=self.path("decoder", "summary.json"),
                              output_dirs=[self.path("rewritten", target)])

    def provenance(self) -> None:
        stages.provenance(self.cut("provenance"),
                          inputs={"texts": self.corpus, "training": self.path("data", "training.parquet"),
                                  "neutral": self.path("data", "neutral.parquet")},
                          provenance_file=self.path("provenance.json"))

    def report(self, pruned: bool = False) -> None:
        per_seed = lambda *parts: [self.path("seeds", str(s), *parts) for s in self.seeds]  # noqa: E731
        stages.report(self.cut("report"), provenance_file=self.path("provenance.json"),
                      data_summary=self.path("data", "summary.json"),
                      prune_summary=self.path("prune", "summary.json") if pruned else None, seeds=self.seeds,
                      convergence_plots=per_seed("convergence.png"),
                      encoder_metrics=per_seed("encoder", "metrics.json"),
                      distribution_plots=per_seed("encoder", "distributions.png"),
                      seed_choice=self.path("best", "seed.json"), decoder_summary=self.path("decoder", "summary.json"),
                      probability_shifts=self.path("decoder", "probability_shifts.png"),
                      tradeoff=self.path("decoder", "tradeoff.png"),
                      rewritten=[self.path("rewritten", t) for t in self.experiment["rewrite"]],
                      report_file=self.path("report.md"))

    def run_all(self, pruned: bool = False) -> None:
        """Every stage in workflow order."""
        self.data()
        if pruned:
            self.prune()
        for seed in self.seeds:
            self.train(seed, pruned)
            self.evaluate(seed)
        self.select_seed()
        self.decoder_grid()
        if self.adaptive:
            self.decoder_search()
        self.select_cell()
        for target in self.experiment["rewrite"]:
            self.rewrite(target)
        self.provenance()
        self.report(pruned)
