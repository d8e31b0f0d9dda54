"""Paths, inputs and params of the analysis rules: bias benchmarks (bias.smk), capability checks
(capability.smk) and feature comparisons (comparison.smk). Included after common.smk."""

# --- bias benchmarks -------------------------------------------------------------------------------


def bias_targets():
    """The benchmark results and the cross-experiment table (nothing without a `benchmarks` block)."""
    files = benchmark_results_all()
    if files:
        files += [os.path.join(RESULTS, "benchmarks.csv"), os.path.join(RESULTS, "benchmarks.tex")]
    return files


def benchmark_results_all():
    return [os.path.join(RESULTS, name, "benchmarks", f"{model}.json")
            for name, exp in EXPERIMENTS.items() for model in wfc.evaluated_models(exp, "benchmarks")]


def evaluated_results(wildcards, block):
    """This experiment's result files of an evaluation `block` (`base` first); empty without the block."""
    exp = experiment_of(wildcards)
    return [exp_file(wildcards, block, f"{model}.json") for model in wfc.evaluated_models(exp, block)]


def evaluated_model_input(wildcards, block, block_files):
    """One model's input of an evaluation `block`: `block_files(experiment)`, plus the base model or the
    rewritten folder."""
    exp = experiment_of(wildcards)
    if wildcards.model not in wfc.evaluated_models(exp, block):
        raise WorkflowError(f"model {wildcards.model!r} of experiment {wildcards.experiment!r} is not scored by "
                            f"`{block}` (`base` and the `rewrite` targets of an experiment with a `{block}` block)")
    files = dict(block_files(exp))
    if wildcards.model == "base":
        files.update(base_model_input(wildcards))
    else:
        files["model"] = exp_file(wildcards, "rewritten", wildcards.model)
    return files


def benchmark_model_input(wildcards):
    return evaluated_model_input(wildcards, "benchmarks", wfc.benchmark_paths)


# --- capability checks -----------------------------------------------------------------------------


def capability_model_input(wildcards):
    return evaluated_model_input(wildcards, "capability",
                                 lambda exp: {"text": os.path.expanduser(exp["capability"]["text"])})


# --- feature comparisons ---------------------------------------------------------------------------

COMPARISONS = wfc.comparison_experiments(CFG)
COMPARISON_DIR = os.path.join(RESULTS, "comparisons")


def comparison_targets():
    files = []
    for name in COMPARISONS:
        for stem in ("topk_overlap", "cross_encoding"):
            files += [os.path.join(COMPARISON_DIR, name, f"{stem}.csv"), os.path.join(COMPARISON_DIR, name, f"{stem}.png")]
    return files


def compared(*parts):
    """Input function: one path per compared experiment, in the comparison's order."""

    def files(wildcards):
        return [os.path.join(RESULTS, e, *parts) for e in COMPARISONS[wildcards.comparison]]

    return files


def comparison_params(stage):
    def cut(wildcards):
        return {"comparison": CFG["comparisons"][wildcards.comparison],
                "experiments": {e: wfc.stage_config(EXPERIMENTS[e], stage) for e in COMPARISONS[wildcards.comparison]}}

    return cut


def comparison_base_model_input(wildcards):
    """The demo model folder when the compared experiments use one."""
    exp = EXPERIMENTS[COMPARISONS[wildcards.comparison][0]]
    return {"base_model": exp["base_model_path"]} if exp["demo_model"] else {}


def comparison_resource(stage, key):
    return lambda wildcards: wfc.stage_resources(CFG, stage)[key]


if COMPARISONS:

    wildcard_constraints:
        comparison="|".join(re.escape(name) for name in COMPARISONS),
