"""Rule pre_prune -> gradiend.stages.pre_prune."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.pre_prune(
            sm.params.config,
            training=sm.input.training,
            importance=sm.output.importance,
            mask=sm.output.mask,
            summary=sm.output.summary,
        )
