"""Rule benchmark_model -> gradiend.stages.benchmark_model."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.benchmark_model(
            sm.params.config,
            model_name=sm.wildcards.model,
            model_dir=sm.input.get("model"),
            stereoset=sm.input.get("stereoset"),
            crows_pairs=sm.input.get("crows_pairs"),
            seat=list(sm.input.seat) if "seat" in sm.input.keys() else None,
            output=sm.output.result,
        )
