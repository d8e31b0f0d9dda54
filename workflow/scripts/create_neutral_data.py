"""Rule create_neutral_data -> gradiend.stages.create_neutral_data."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.create_neutral_data(sm.params.config, texts=sm.input.get("texts"), neutral=sm.output.neutral)
