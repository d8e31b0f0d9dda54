"""Optional pre-pruning, one training job per seed, encoder evaluation (one job per experiment, or per
seed on a cluster: `job_layout`), seed selection."""


rule pre_prune:
    input:
        unpack(base_model_input),
        training=exp_path("data", "training.parquet"),
    output:
        importance=exp_path("prune", "importance.safetensors"),
        mask=exp_path("prune", "mask.safetensors"),
        summary=exp_path("prune", "summary.json"),
    log:
        exp_path("logs", "pre_prune.log"),
    benchmark:
        exp_path("benchmarks", "pre_prune.tsv")
    params:
        version=GRADIEND_VERSION,
        config=stage_params("pre_prune"),
    threads: resource("pre_prune", "threads")
    resources:
        gpu=resource("pre_prune", "gpu"),
        mem_mb=resource("pre_prune", "mem_mb"),
        runtime=resource("pre_prune", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/pre_prune.py"


rule train_seed:
    input:
        unpack(train_seed_input),
    output:
        model=directory(exp_path("seeds", "{seed}", "model")),
        convergence=report(
            exp_path("seeds", "{seed}", "convergence.png"),
            caption="../report/convergence.rst",
            category="{experiment}",
            subcategory="Training",
            labels={"seed": "{seed}", "figure": "convergence"},
        ),
    log:
        exp_path("logs", "train_seed_{seed}.log"),
    benchmark:
        exp_path("benchmarks", "train_seed_{seed}.tsv")
    params:
        version=GRADIEND_VERSION,
        config=stage_params("train_seed"),
    threads: resource("train_seed", "threads")
    resources:
        gpu=resource("train_seed", "gpu"),
        mem_mb=resource("train_seed", "mem_mb"),
        runtime=resource("train_seed", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/train_seed.py"


if JOB_LAYOUT == "per_experiment":
    # One job per experiment evaluates every seed's encoder (one start-up; adding a seed evaluates
    # them all again, about a second each on the demo). Outputs are fixed patterns, so experiments
    # are grouped by their list of seeds.
    for _index, (_seeds, _names) in enumerate(experiments_by(lambda e: tuple(e["seeds"])).items()):

        rule:
            name:
                "evaluate_encoders" if _index == 0 else f"evaluate_encoders_{_index + 1}"
            wildcard_constraints:
                experiment="|".join(re.escape(n) for n in _names),
            input:
                unpack(base_model_input),
                models=[exp_path("seeds", str(seed), "model") for seed in _seeds],
                training=exp_path("data", "training.parquet"),
                neutral=exp_path("data", "neutral.parquet"),
            output:
                metrics=[exp_path("seeds", str(seed), "encoder", "metrics.json") for seed in _seeds],
                encoded=[exp_path("seeds", str(seed), "encoder", "encoded.parquet") for seed in _seeds],
                distributions=[
                    report(
                        exp_path("seeds", str(seed), "encoder", "distributions.png"),
                        caption="../report/distributions.rst",
                        category="{experiment}",
                        subcategory="Encoder",
                        labels={"seed": str(seed), "figure": "distributions"},
                    )
                    for seed in _seeds
                ],
            log:
                exp_path("logs", "evaluate_encoders.log"),
            benchmark:
                exp_path("benchmarks", "evaluate_encoders.tsv")
            params:
                version=GRADIEND_VERSION,
                config=stage_params("evaluate_encoders"),
                seeds=list(_seeds),
            threads: resource("evaluate_encoder", "threads")
            resources:
                gpu=resource("evaluate_encoder", "gpu"),
                mem_mb=resource("evaluate_encoder", "mem_mb"),
                runtime=resource("evaluate_encoder", "runtime"),
            conda:
                CONDA_ENV
            script:
                "../scripts/evaluate_encoders.py"

else:
    # fan_out (clusters): one job per seed.
    rule evaluate_encoder:
        input:
            unpack(base_model_input),
            models=[exp_path("seeds", "{seed}", "model")],
            training=exp_path("data", "training.parquet"),
            neutral=exp_path("data", "neutral.parquet"),
        output:
            metrics=[exp_path("seeds", "{seed}", "encoder", "metrics.json")],
            encoded=[exp_path("seeds", "{seed}", "encoder", "encoded.parquet")],
            distributions=[
                report(
                    exp_path("seeds", "{seed}", "encoder", "distributions.png"),
                    caption="../report/distributions.rst",
                    category="{experiment}",
                    subcategory="Encoder",
                    labels={"seed": "{seed}", "figure": "distributions"},
                )
            ],
        log:
            exp_path("logs", "evaluate_encoder_{seed}.log"),
        benchmark:
            exp_path("benchmarks", "evaluate_encoder_{seed}.tsv")
        params:
            version=GRADIEND_VERSION,
            config=stage_params("evaluate_encoders"),
            seeds=lambda wildcards: [int(wildcards.seed)],
        threads: resource("evaluate_encoder", "threads")
        resources:
            gpu=resource("evaluate_encoder", "gpu"),
            mem_mb=resource("evaluate_encoder", "mem_mb"),
            runtime=resource("evaluate_encoder", "runtime"),
        conda:
            CONDA_ENV
        script:
            "../scripts/evaluate_encoders.py"


rule select_seed:
    input:
        models=per_seed("model"),
        metrics=per_seed("encoder", "metrics.json"),
    output:
        choice=exp_path("best", "seed.json"),
        model=directory(exp_path("best", "model")),
    log:
        exp_path("logs", "select_seed.log"),
    params:
        version=GRADIEND_VERSION,
        config=stage_params("select_seed"),
    threads: resource("select_seed", "threads")
    resources:
        gpu=resource("select_seed", "gpu"),
        mem_mb=resource("select_seed", "mem_mb"),
        runtime=resource("select_seed", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/select_seed.py"
