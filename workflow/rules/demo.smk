"""Offline demo assets, shared by every experiment that uses them (built only when needed)."""


rule demo_corpus:
    output:
        corpus=os.path.join(DEMO_DIR, "corpus.txt"),
    log:
        os.path.join(DEMO_DIR, "logs", "demo_corpus.log"),
    params:
        version=GRADIEND_VERSION,
        config=CFG["demo"]["corpus"],
    threads: resource("demo_corpus", "threads")
    resources:
        gpu=resource("demo_corpus", "gpu"),
        mem_mb=resource("demo_corpus", "mem_mb"),
        runtime=resource("demo_corpus", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/demo_corpus.py"


rule demo_model:
    input:
        corpus=os.path.join(DEMO_DIR, "corpus.txt"),
    output:
        model=directory(os.path.join(DEMO_DIR, "models", "{demo_model}")),
    log:
        os.path.join(DEMO_DIR, "logs", "demo_model_{demo_model}.log"),
    benchmark:
        os.path.join(DEMO_DIR, "benchmarks", "demo_model_{demo_model}.tsv")
    params:
        version=GRADIEND_VERSION,
        config=lambda wildcards: {
            "name": wildcards.demo_model,
            **CFG["demo"]["models"][wildcards.demo_model],
        },
    threads: resource("demo_model", "threads")
    resources:
        gpu=resource("demo_model", "gpu"),
        mem_mb=resource("demo_model", "mem_mb"),
        runtime=resource("demo_model", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/demo_model.py"
