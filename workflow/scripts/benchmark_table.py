"""Rule benchmark_table -> gradiend.stages.benchmark_table."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.benchmark_table(sm.params.config, results=list(sm.input.results), csv=sm.output.csv,
                               tex=sm.output.tex)
