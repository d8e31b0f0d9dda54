"""Rule train_seed -> gradiend.stages.train_seed."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.train_seed(
            sm.params.config,
            seed=int(sm.wildcards.seed),
            training=sm.input.training,
            mask=sm.input.get("mask"),
            model=sm.output.model,
            convergence=sm.output.convergence,
        )
