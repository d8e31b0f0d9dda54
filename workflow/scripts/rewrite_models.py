"""Rules rewrite_models (one job per experiment) and rewrite_model (one per target)
-> gradiend.stages.rewrite_models."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.rewrite_models(
            sm.params.config,
            targets=list(sm.params.targets),
            model=sm.input.model,
            decoder_summary=sm.input.decoder_summary,
            output_dirs=list(sm.output.models),
        )
