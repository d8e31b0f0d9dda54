"""Decoder grid (one file per cell), the adaptive search (`decoder.search: adaptive`), cell choice,
rewrites. On one machine one job per experiment scores the grid and one writes the rewrites; on a
cluster they fan out (`job_layout`). The search is one job per experiment either way: each trial
depends on the ones before it."""


if JOB_LAYOUT == "per_experiment":
    # One job per experiment scores the whole grid (one start-up for all cells: the local default).
    # It still writes one file per cell, and cells whose inputs did not change are copied from
    # decoder/cache/ (gradiend.stages.decoder_grid), so a changed learning rate recomputes only its
    # cells. Outputs are fixed patterns, so experiments are grouped by their set of cells.
    for _index, (_cells, _names) in enumerate(experiments_by(grid_cell_names).items()):

        rule:
            name:
                "decoder_grid" if _index == 0 else f"decoder_grid_{_index + 1}"
            wildcard_constraints:
                experiment="|".join(re.escape(n) for n in _names),
            input:
                unpack(decoder_lr_input),
            output:
                cells=[exp_path("decoder", "cells", f"{name}.json") for name in _cells],
            log:
                exp_path("logs", "decoder_grid.log"),
            benchmark:
                exp_path("benchmarks", "decoder_grid.tsv")
            params:
                version=GRADIEND_VERSION,
                config=stage_params("decoder_grid"),
                cache=lambda wildcards: exp_file(wildcards, "decoder", "cache"),
            threads: resource("decoder_cell", "threads")
            resources:
                gpu=resource("decoder_cell", "gpu"),
                mem_mb=resource("decoder_cell", "mem_mb"),
                runtime=resource("decoder_cell", "runtime"),
            conda:
                CONDA_ENV
            script:
                "../scripts/decoder_grid.py"

else:
    # fan_out (clusters): one job per learning rate plus `base`, so the cells can run on several
    # GPUs at once.
    rule decoder_base:
        input:
            unpack(decoder_data_input),
        output:
            cells=[exp_path("decoder", "cells", "base.json")],
        log:
            exp_path("logs", "decoder_cell_base.log"),
        benchmark:
            exp_path("benchmarks", "decoder_cell_base.tsv")
        params:
            version=GRADIEND_VERSION,
            config=stage_params("decoder_grid"),
        group:
            "decoder_grid"
        threads: resource("decoder_cell", "threads")
        resources:
            gpu=resource("decoder_cell", "gpu"),
            mem_mb=resource("decoder_cell", "mem_mb"),
            runtime=resource("decoder_cell", "runtime"),
        conda:
            CONDA_ENV
        script:
            "../scripts/decoder_grid.py"


    # One job per learning rate writes the cells of every feature factor of that rate (one file per
    # cell, so a changed learning rate reruns only its cells): each job pays the start-up (Python,
    # torch, transformers, the model) once for all its cells. A rule's outputs must be fixed patterns,
    # so experiments are grouped by their set of feature factors, one rule per set; the usual case
    # (every experiment with both factors) is the single rule `decoder_cell`.
    for _index, (_factors, _names) in enumerate(experiments_by(decoder_factors).items()):

        rule:
            name:
                "decoder_cell" if _index == 0 else f"decoder_cell_{_index + 1}"
            wildcard_constraints:
                experiment="|".join(re.escape(n) for n in _names),
                lr=r"[^_/~]+",
            input:
                unpack(decoder_lr_input),
            output:
                cells=[decoder_cell_pattern(ff) for ff in _factors],
            log:
                exp_path("logs", "decoder_cell_lr~{lr}.log"),
            benchmark:
                exp_path("benchmarks", "decoder_cell_lr~{lr}.tsv")
            params:
                version=GRADIEND_VERSION,
                config=stage_params("decoder_grid"),
                learning_rate=decoder_learning_rate,
                feature_factors=list(_factors),
            group:
                "decoder_grid"
            threads: resource("decoder_cell", "threads")
            resources:
                gpu=resource("decoder_cell", "gpu"),
                mem_mb=resource("decoder_cell", "mem_mb"),
                runtime=resource("decoder_cell", "runtime"),
            conda:
                CONDA_ENV
            script:
                "../scripts/decoder_grid.py"


rule decoder_search:
    input:
        unpack(decoder_lr_input),
        base=exp_path("decoder", "cells", "base.json"),
        cells=grid_cells,
    output:
        search=exp_path("decoder", "search.json"),
    log:
        exp_path("logs", "decoder_search.log"),
    benchmark:
        exp_path("benchmarks", "decoder_search.tsv")
    params:
        version=GRADIEND_VERSION,
        config=stage_params("decoder_search"),
        # one cached cell file per trial, reused by a rerun (not an output: their number depends on the results)
        trials=lambda wildcards: exp_file(wildcards, "decoder", "trials"),
    threads: resource("decoder_search", "threads")
    resources:
        gpu=resource("decoder_search", "gpu"),
        mem_mb=resource("decoder_search", "mem_mb"),
        runtime=resource("decoder_search", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/decoder_search.py"


rule select_cell:
    input:
        unpack(decoder_search_input),
        base=exp_path("decoder", "cells", "base.json"),
        cells=grid_cells,
        seed_choice=exp_path("best", "seed.json"),
    output:
        summary=exp_path("decoder", "summary.json"),
        plot=report(
            exp_path("decoder", "probability_shifts.png"),
            caption="../report/probability_shifts.rst",
            category="{experiment}",
            subcategory="Decoder",
            labels={"figure": "probability shifts"},
        ),
        tradeoff=report(
            exp_path("decoder", "tradeoff.png"),
            caption="../report/tradeoff.rst",
            category="{experiment}",
            subcategory="Decoder",
            labels={"figure": "trade-off"},
        ),
    log:
        exp_path("logs", "select_cell.log"),
    params:
        version=GRADIEND_VERSION,
        config=stage_params("select_cell"),
    threads: resource("select_cell", "threads")
    resources:
        gpu=resource("select_cell", "gpu"),
        mem_mb=resource("select_cell", "mem_mb"),
        runtime=resource("select_cell", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/select_cell.py"


if JOB_LAYOUT == "per_experiment":
    # One job per experiment writes every rewrite target (one start-up); targets are fixed patterns,
    # so experiments are grouped by their list of targets.
    for _index, (_targets, _names) in enumerate(experiments_by(lambda e: tuple(e["rewrite"])).items()):

        rule:
            name:
                "rewrite_models" if _index == 0 else f"rewrite_models_{_index + 1}"
            wildcard_constraints:
                experiment="|".join(re.escape(n) for n in _names),
            input:
                unpack(base_model_input),
                model=exp_path("best", "model"),
                decoder_summary=exp_path("decoder", "summary.json"),
            output:
                models=[directory(exp_path("rewritten", target)) for target in _targets],
            log:
                exp_path("logs", "rewrite_models.log"),
            benchmark:
                exp_path("benchmarks", "rewrite_models.tsv")
            params:
                version=GRADIEND_VERSION,
                config=stage_params("rewrite_models"),
                targets=list(_targets),
            threads: resource("rewrite_model", "threads")
            resources:
                gpu=resource("rewrite_model", "gpu"),
                mem_mb=resource("rewrite_model", "mem_mb"),
                runtime=resource("rewrite_model", "runtime"),
            conda:
                CONDA_ENV
            script:
                "../scripts/rewrite_models.py"

else:
    # fan_out (clusters): one job per rewrite target.
    rule rewrite_model:
        input:
            unpack(base_model_input),
            model=exp_path("best", "model"),
            decoder_summary=exp_path("decoder", "summary.json"),
        output:
            models=[directory(exp_path("rewritten", "{target}"))],
        log:
            exp_path("logs", "rewrite_model_{target}.log"),
        benchmark:
            exp_path("benchmarks", "rewrite_model_{target}.tsv")
        params:
            version=GRADIEND_VERSION,
            config=stage_params("rewrite_models"),
            targets=lambda wildcards: [wildcards.target],
        threads: resource("rewrite_model", "threads")
        resources:
            gpu=resource("rewrite_model", "gpu"),
            mem_mb=resource("rewrite_model", "mem_mb"),
            runtime=resource("rewrite_model", "runtime"),
        conda:
            CONDA_ENV
        script:
            "../scripts/rewrite_models.py"
