"""Rules evaluate_encoders (one job per experiment) and evaluate_encoder (one per seed)
-> gradiend.stages.evaluate_encoders."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.evaluate_encoders(
            sm.params.config,
            seeds=list(sm.params.seeds),
            models=list(sm.input.models),
            training=sm.input.training,
            neutral=sm.input.neutral,
            metrics=list(sm.output.metrics),
            encoded=list(sm.output.encoded),
            distributions=list(sm.output.distributions),
        )
