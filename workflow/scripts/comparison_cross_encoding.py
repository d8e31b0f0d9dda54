"""Rule comparison_cross_encoding -> gradiend.stages.comparison_cross_encoding."""
from gradiend import stages

if __name__ == "__main__":
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    with stages.rule_context(sm.log[0], sm.threads):
        stages.comparison_cross_encoding(
            sm.params.config,
            name=sm.wildcards.comparison,
            experiments=sm.params.experiments,
            models=list(sm.input.models),
            trainings=list(sm.input.trainings),
            csv=sm.output.csv,
            plot=sm.output.plot,
        )
