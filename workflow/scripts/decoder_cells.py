"""Rule decoder_cell -> gradiend.stages.decoder_cell."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.decoder_cell(
            sm.params.config,
            learning_rate=sm.params.learning_rate,
            feature_factor=sm.params.feature_factor,
            model=sm.input.get("model"),
            training=sm.input.training,
            neutral=sm.input.neutral,
            cell=sm.output.cell,
        )
