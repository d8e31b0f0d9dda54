"""Rule summary -> gradiend.stages.summary."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.summary(
            sm.params.config,
            experiments=sm.params.experiments,
            data_summaries=list(sm.input.data_summaries),
            seed_choices=list(sm.input.seed_choices),
            decoder_summaries=list(sm.input.decoder_summaries),
            csv=sm.output.csv,
            tex=sm.output.tex,
        )
