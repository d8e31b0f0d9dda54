"""Bias benchmarks (StereoSet, CrowS-Pairs): one job per evaluated model, one table across experiments.

Runs only for experiments with a `benchmarks` block; the models are `base` (the unmodified base
model, which does not wait for training) and every `rewrite` target.
"""


rule benchmark_model:
    input:
        unpack(benchmark_model_input),
    output:
        result=exp_path("benchmarks", "{model}.json"),
    log:
        exp_path("logs", "benchmark_model_{model}.log"),
    benchmark:
        exp_path("benchmarks", "benchmark_model_{model}.tsv")
    wildcard_constraints:
        model=r"base|" + wfc.SAFE_NAME.pattern.strip("^$"),
    params:
        version=GRADIEND_VERSION,
        config=stage_params("benchmark_model"),
    threads: resource("benchmark_model", "threads")
    resources:
        gpu=resource("benchmark_model", "gpu"),
        mem_mb=resource("benchmark_model", "mem_mb"),
        runtime=resource("benchmark_model", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/benchmark_model.py"


rule benchmark_table:
    input:
        results=benchmark_results_all(),
    output:
        csv=os.path.join(RESULTS, "benchmarks.csv"),
        tex=os.path.join(RESULTS, "benchmarks.tex"),
    log:
        os.path.join(RESULTS, "logs", "benchmark_table.log"),
    params:
        version=GRADIEND_VERSION,
        config={name: wfc.stage_config(exp, "benchmark_table") for name, exp in EXPERIMENTS.items()
                if wfc.evaluated_models(exp, "benchmarks")},
    threads: resource("benchmark_table", "threads")
    resources:
        gpu=resource("benchmark_table", "gpu"),
        mem_mb=resource("benchmark_table", "mem_mb"),
        runtime=resource("benchmark_table", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/benchmark_table.py"
