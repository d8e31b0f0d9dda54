"""Decoder grid (one job per learning rate x feature factor, plus `base`), cell choice, rewrites."""


rule decoder_cell:
    input:
        unpack(decoder_cell_input),
    output:
        cell=exp_path("decoder", "cells", "{cell}.json"),
    log:
        exp_path("logs", "decoder_cell_{cell}.log"),
    benchmark:
        exp_path("benchmarks", "decoder_cell_{cell}.tsv")
    params:
        version=GRADIEND_VERSION,
        config=stage_params("decoder_cell"),
        learning_rate=lambda wildcards: cell_setting(wildcards)[0],
        feature_factor=lambda wildcards: cell_setting(wildcards)[1],
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
        "../scripts/decoder_cell.py"


rule select_cell:
    input:
        base=exp_path("decoder", "cells", "base.json"),
        cells=grid_cells,
    output:
        summary=exp_path("decoder", "summary.json"),
        plot=report(
            exp_path("decoder", "probability_shifts.png"),
            caption="../report/probability_shifts.rst",
            category="{experiment}",
            subcategory="Decoder",
            labels={"figure": "probability shifts"},
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


rule rewrite_model:
    input:
        unpack(base_model_input),
        model=exp_path("best", "model"),
        decoder_summary=exp_path("decoder", "summary.json"),
    output:
        model=directory(exp_path("rewritten", "{target}")),
    log:
        exp_path("logs", "rewrite_model_{target}.log"),
    benchmark:
        exp_path("benchmarks", "rewrite_model_{target}.tsv")
    params:
        version=GRADIEND_VERSION,
        config=stage_params("rewrite_model"),
    threads: resource("rewrite_model", "threads")
    resources:
        gpu=resource("rewrite_model", "gpu"),
        mem_mb=resource("rewrite_model", "mem_mb"),
        runtime=resource("rewrite_model", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/rewrite_model.py"
