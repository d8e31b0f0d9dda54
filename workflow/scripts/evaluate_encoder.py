"""Rule evaluate_encoder -> gradiend.stages.evaluate_encoder."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.evaluate_encoder(
            sm.params.config,
            seed=int(sm.wildcards.seed),
            model=sm.input.model,
            training=sm.input.training,
            neutral=sm.input.neutral,
            metrics=sm.output.metrics,
            encoded=sm.output.encoded,
            distributions=sm.output.distributions,
        )
