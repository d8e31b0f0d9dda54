"""Rule rewrite_model -> gradiend.stages.rewrite_model."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.rewrite_model(
            sm.params.config,
            target=sm.wildcards.target,
            model=sm.input.model,
            decoder_summary=sm.input.decoder_summary,
            output_dir=sm.output.model,
        )
