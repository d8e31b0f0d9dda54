"""Shared helper of the Snakemake-driven tests: what a (dry) run plans to do."""
from __future__ import annotations


def planned_jobs(output: str) -> dict[str, int]:
    """{rule: count} from Snakemake's 'Job stats' table; {} when there is nothing to do."""
    lines = output.splitlines()
    if "Job stats:" not in lines:
        return {}
    counts = {}
    for line in lines[lines.index("Job stats:") + 3:]:
        rule, count = line.split()
        if rule == "total":
            break
        counts[rule] = int(count)
    return counts
