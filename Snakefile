"""GRADIEND workflow: learn a feature of a language model from its gradients, one cached,
restartable file-to-file stage per rule (docs/design.md §1). Run from the repository root:

    snakemake --cores 2                                   # config/config.yaml, offline demo
    snakemake --cores 8 --configfile config/experiments/bert_gender_en.yaml
    snakemake --workflow-profile workflow/profiles/slurm --configfile ...

Snakemake finds the workflow profile workflow/profiles/default/ through the `profiles` link beside
this file (it looks for profiles/default/ next to the Snakefile; config/README.md, "Profiles").
"""
from snakemake.utils import min_version

min_version("9.0")

# A --configfile given on the command line replaces the embedded default instead of being merged
# into it (merging would add the demo experiments to every paper-scale run).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/decoder.smk"
include: "workflow/rules/records.smk"
include: "workflow/rules/analysis_common.smk"
include: "workflow/rules/bias.smk"
include: "workflow/rules/capability.smk"
include: "workflow/rules/comparison.smk"


localrules:
    all,
    demo_corpus,
    select_cell,
    provenance,
    report,
    summary,
    benchmark_table,


rule all:
    default_target: True
    input:
        all_targets(),
        bias_targets(),
        comparison_targets(),
