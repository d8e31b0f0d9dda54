"""Per-experiment provenance and report, and the table across experiments."""


rule provenance:
    input:
        unpack(provenance_input),
    output:
        provenance=exp_path("provenance.json"),
    log:
        exp_path("logs", "provenance.log"),
    params:
        version=GRADIEND_VERSION,
        config=stage_params("provenance"),
    threads: resource("provenance", "threads")
    resources:
        gpu=resource("provenance", "gpu"),
        mem_mb=resource("provenance", "mem_mb"),
        runtime=resource("provenance", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/provenance.py"


rule report:
    input:
        unpack(prune_summary_input),
        provenance=exp_path("provenance.json"),
        data_summary=exp_path("data", "summary.json"),
        convergence_plots=per_seed("convergence.png"),
        encoder_metrics=per_seed("encoder", "metrics.json"),
        distribution_plots=per_seed("encoder", "distributions.png"),
        seed_choice=exp_path("best", "seed.json"),
        decoder_summary=exp_path("decoder", "summary.json"),
        probability_shifts=exp_path("decoder", "probability_shifts.png"),
        tradeoff=exp_path("decoder", "tradeoff.png"),
        rewritten=rewritten_dirs,
        benchmarks=lambda wildcards: evaluated_results(wildcards, "benchmarks"),
        capability=lambda wildcards: evaluated_results(wildcards, "capability"),
    output:
        report=exp_path("report.md"),
    log:
        exp_path("logs", "report.log"),
    params:
        version=GRADIEND_VERSION,
        config=stage_params("report"),
        seeds=lambda wildcards: experiment_of(wildcards)["seeds"],
    threads: resource("report", "threads")
    resources:
        gpu=resource("report", "gpu"),
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/report.py"


rule summary:
    input:
        data_summaries=per_experiment("data", "summary.json"),
        seed_choices=per_experiment("best", "seed.json"),
        decoder_summaries=per_experiment("decoder", "summary.json"),
    output:
        csv=os.path.join(RESULTS, "summary.csv"),
        tex=os.path.join(RESULTS, "summary.tex"),
    log:
        os.path.join(RESULTS, "logs", "summary.log"),
    params:
        version=GRADIEND_VERSION,
        config={name: wfc.stage_config(exp, "summary") for name, exp in EXPERIMENTS.items()},
        experiments=list(EXPERIMENTS),
    threads: resource("summary", "threads")
    resources:
        gpu=resource("summary", "gpu"),
        mem_mb=resource("summary", "mem_mb"),
        runtime=resource("summary", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/summary.py"
