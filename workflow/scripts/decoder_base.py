"""Rule decoder_base -> gradiend.stages.decoder_base (the unmodified model's cell)."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.decoder_base(sm.params.config, training=sm.input.training, neutral=sm.input.neutral,
                            cell=sm.output.cell)
