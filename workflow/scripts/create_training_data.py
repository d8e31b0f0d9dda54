"""Rule create_training_data -> gradiend.stages.create_training_data."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.create_training_data(
            sm.params.config,
            texts=sm.input.get("texts"),
            training=sm.output.training,
            summary=sm.output.summary,
        )
