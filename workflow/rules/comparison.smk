"""Feature comparisons across experiments of one base model (top-level `comparisons`)."""


rule comparison_topk:
    input:
        models=compared("best", "model"),
    output:
        csv=os.path.join(COMPARISON_DIR, "{comparison}", "topk_overlap.csv"),
        plot=report(
            os.path.join(COMPARISON_DIR, "{comparison}", "topk_overlap.png"),
            category="Comparisons",
            subcategory="{comparison}",
            labels={"figure": "top-k overlap"},
        ),
    log:
        os.path.join(COMPARISON_DIR, "{comparison}", "logs", "comparison_topk.log"),
    params:
        version=GRADIEND_VERSION,
        config=comparison_params("comparison_topk"),
        experiments=lambda wildcards: COMPARISONS[wildcards.comparison],
    threads: comparison_resource("comparison_topk", "threads")
    resources:
        gpu=comparison_resource("comparison_topk", "gpu"),
        mem_mb=comparison_resource("comparison_topk", "mem_mb"),
        runtime=comparison_resource("comparison_topk", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/comparison_topk.py"


rule comparison_cross_encoding:
    input:
        unpack(comparison_base_model_input),
        models=compared("best", "model"),
        trainings=compared("data", "training.parquet"),
    output:
        csv=os.path.join(COMPARISON_DIR, "{comparison}", "cross_encoding.csv"),
        plot=report(
            os.path.join(COMPARISON_DIR, "{comparison}", "cross_encoding.png"),
            category="Comparisons",
            subcategory="{comparison}",
            labels={"figure": "cross-encoding"},
        ),
    log:
        os.path.join(COMPARISON_DIR, "{comparison}", "logs", "comparison_cross_encoding.log"),
    benchmark:
        os.path.join(COMPARISON_DIR, "{comparison}", "logs", "comparison_cross_encoding.tsv")
    params:
        version=GRADIEND_VERSION,
        config=comparison_params("comparison_cross_encoding"),
        experiments=lambda wildcards: COMPARISONS[wildcards.comparison],
    threads: comparison_resource("comparison_cross_encoding", "threads")
    resources:
        gpu=comparison_resource("comparison_cross_encoding", "gpu"),
        mem_mb=comparison_resource("comparison_cross_encoding", "mem_mb"),
        runtime=comparison_resource("comparison_cross_encoding", "runtime"),
    conda:
        CONDA_ENV
    script:
        "../scripts/comparison_cross_encoding.py"
