"""Rule decoder_search -> gradiend.stages.decoder_search."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.decoder_search(
            sm.params.config,
            model=sm.input.model,
            training=sm.input.training,
            neutral=sm.input.neutral,
            base=sm.input.base,
            cells=list(sm.input.cells),
            trials=sm.params.trials,
            search=sm.output.search,
        )
