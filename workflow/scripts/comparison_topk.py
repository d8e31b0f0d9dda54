"""Rule comparison_topk -> gradiend.stages.comparison_topk."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.comparison_topk(sm.params.config, name=sm.wildcards.comparison, experiments=sm.params.experiments,
                               models=list(sm.input.models), csv=sm.output.csv, plot=sm.output.plot)
