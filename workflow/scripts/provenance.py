"""Rule provenance -> gradiend.stages.provenance."""
from gradiend import stages

DATA_INPUTS = ("texts", "training", "neutral")  # the base model folder is hashed from the config

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.provenance(
            sm.params.config,
            inputs={name: sm.input.get(name) for name in DATA_INPUTS},
            provenance_file=sm.output.provenance,
        )
