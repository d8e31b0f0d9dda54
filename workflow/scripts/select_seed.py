"""Rule select_seed -> gradiend.stages.select_seed."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.select_seed(
            sm.params.config,
            seeds=sm.params.config["seeds"],
            models=list(sm.input.models),
            metrics=list(sm.input.metrics),
            choice=sm.output.choice,
            best_model=sm.output.model,
        )
