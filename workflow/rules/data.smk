"""Raw texts -> the unified training table and the neutral texts."""


rule create_training_data:
    input:
        unpack(raw_texts_input),
    output:
        training=exp_path("data", "training.parquet"),
        summary=exp_path("data", "summary.json"),
    log:
        exp_path("logs", "create_training_data.log"),
    params:
        version=GRADIEND_VERSION,
        config=stage_params("create_training_data"),
    threads: resource("create_training_data", "threads")
    resources:
        gpu=resource("create_training_data", "gpu"),
        mem_mb=resource("create_training_data", "mem_mb"),
        runtime=resource("create_training_data", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/create_training_data.py"


rule create_neutral_data:
    input:
        unpack(raw_texts_input),
    output:
        neutral=exp_path("data", "neutral.parquet"),
    log:
        exp_path("logs", "create_neutral_data.log"),
    params:
        version=GRADIEND_VERSION,
        config=stage_params("create_neutral_data"),
    threads: resource("create_neutral_data", "threads")
    resources:
        gpu=resource("create_neutral_data", "gpu"),
        mem_mb=resource("create_neutral_data", "mem_mb"),
        runtime=resource("create_neutral_data", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/create_neutral_data.py"
