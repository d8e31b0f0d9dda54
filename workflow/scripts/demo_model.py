"""Rule demo_model -> gradiend.stages.demo_model."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.demo_model(sm.params.config, corpus=sm.input.corpus, model_dir=sm.output.model)
