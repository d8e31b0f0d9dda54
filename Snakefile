"""GRADIEND workflow: learn a feature of a language model from its gradients, one cached,
restartable file-to-file stage per rule (docs/design.md §1). Run from the repository root:

    snakemake --cores 2                                   # config/config.yaml, offline demo
    snakemake --cores 8 --configfile config/experiments/bert_gender_en.yaml
    snakemake --workflow-profile workflow/profiles/slurm --configfile ...

Snakemake finds the workflow profile workflow/profiles/default/ through the `profiles` link beside
this file (it looks for profiles/default/ next to the Snakefile; config/README.md, "Profiles").
"""
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from gradiend.config_files import check_config_files
from gradiend.schema_validation import ConfigError, check_yaml_file, load_yaml

min_version("9.0")

DEFAULT_CONFIGFILE = "config/config.yaml"
SCHEMA_FILE = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
try:
    # Snakemake's own reader keeps the last of two equal keys, reads YAML 1.1 (010 is 8, `no` is
    # false) and merges two --configfile files key by key, all without a word: read the files again
    # and refuse that (and a file that holds no mapping) before anything runs. The shipped profiles
    # are YAML files a user edits too (partitions, accounts).
    _default = [DEFAULT_CONFIGFILE] if Path(DEFAULT_CONFIGFILE).is_file() else []
    check_config_files(workflow.overwrite_configfiles or _default, load_yaml(SCHEMA_FILE))
    for _profile in sorted((Path(workflow.basedir) / "workflow" / "profiles").glob("*/config.yaml")):
        check_yaml_file(_profile)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

# A --configfile given on the command line replaces the embedded default instead of being merged
# into it (merging would add the demo experiments to every paper-scale run).
if not workflow.overwrite_configfiles:

    configfile: DEFAULT_CONFIGFILE


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
