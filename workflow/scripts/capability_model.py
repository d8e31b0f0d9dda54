"""Rule capability_model -> gradiend.stages.capability_model."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.capability_model(
            sm.params.config,
            model_name=sm.wildcards.model,
            model_dir=sm.input.get("model"),
            text=sm.input.text,
            output=sm.output.result,
        )
