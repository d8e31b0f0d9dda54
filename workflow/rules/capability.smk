"""Capability checks (held-out perplexity, lm-evaluation-harness tasks): one job per evaluated model.

Runs only for experiments with a `capability` block; the models are `base` (the unmodified base
model, which does not wait for training) and every `rewrite` target. The report shows them.
"""


rule capability_model:
    input:
        unpack(capability_model_input),
    output:
        result=exp_path("capability", "{model}.json"),
    log:
        exp_path("logs", "capability_model_{model}.log"),
    benchmark:
        exp_path("benchmarks", "capability_model_{model}.tsv")
    wildcard_constraints:
        model=r"base|" + wfc.SAFE_NAME.pattern.strip("^$"),
    params:
        version=GRADIEND_VERSION,
        config=stage_params("capability_model"),
    threads: resource("capability_model", "threads")
    resources:
        gpu=resource("capability_model", "gpu"),
        mem_mb=resource("capability_model", "mem_mb"),
        runtime=resource("capability_model", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/capability_model.py"
