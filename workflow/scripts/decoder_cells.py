"""Rule decoder_cell (one job per learning rate) -> gradiend.stages.decoder_cells."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.decoder_cells(
            sm.params.config,
            learning_rate=sm.params.learning_rate,
            feature_factors=list(sm.params.feature_factors),
            model=sm.input.model,
            training=sm.input.training,
            neutral=sm.input.neutral,
            cells=list(sm.output.cells),
        )
