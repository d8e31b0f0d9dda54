"""Rule provenance -> gradiend.stages.provenance."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.provenance(sm.params.config, provenance_file=sm.output.provenance)
