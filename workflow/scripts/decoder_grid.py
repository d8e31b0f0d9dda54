"""Rules decoder_grid (one job per experiment), decoder_cell (one per learning rate) and decoder_base
(the unmodified model's cell, no checkpoint) -> gradiend.stages.decoder_grid."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.decoder_grid(
            sm.params.config,
            model=sm.input.get("model"),
            training=sm.input.training,
            neutral=sm.input.neutral,
            cells=list(sm.output.cells),
            cache=sm.params.get("cache"),
        )
