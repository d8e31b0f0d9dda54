"""Rule demo_corpus -> gradiend.stages.demo_corpus."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.demo_corpus(sm.params.config, corpus=sm.output.corpus)
