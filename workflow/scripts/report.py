"""Rule report -> gradiend.stages.report."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.report(
            sm.params.config,
            provenance_file=sm.input.provenance,
            data_summary=sm.input.data_summary,
            prune_summary=sm.input.get("prune_summary"),
            seeds=sm.params.seeds,
            convergence_plots=list(sm.input.convergence_plots),
            encoder_metrics=list(sm.input.encoder_metrics),
            distribution_plots=list(sm.input.distribution_plots),
            seed_choice=sm.input.seed_choice,
            decoder_summary=sm.input.decoder_summary,
            probability_shifts=sm.input.probability_shifts,
            tradeoff=sm.input.tradeoff,
            rewritten=list(sm.input.rewritten),
            benchmark_results=list(sm.input.benchmarks),
            capability_results=list(sm.input.capability),
            report_file=sm.output.report,
        )
