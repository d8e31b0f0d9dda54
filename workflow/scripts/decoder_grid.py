"""Rule decoder_grid (one job per experiment) -> gradiend.stages.decoder_grid."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.decoder_grid(
            sm.params.config,
            model=sm.input.model,
            training=sm.input.training,
            neutral=sm.input.neutral,
            cells=list(sm.output.cells),
            cache=sm.params.cache,
        )
