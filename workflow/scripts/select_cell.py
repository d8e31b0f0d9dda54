"""Rule select_cell -> gradiend.stages.select_cell."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.select_cell(
            sm.params.config,
            base=sm.input.base,
            cells=list(sm.input.cells),
            seed_choice=sm.input.seed_choice,
            search=sm.input.get("search"),
            summary=sm.output.summary,
            plot=sm.output.plot,
            tradeoff=sm.output.tradeoff,
        )
