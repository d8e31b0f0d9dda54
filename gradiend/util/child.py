"""One call in a fresh Python process, for what must not stay open in this one: a GPU context that the
Snakemake process would otherwise hold (and take GPU memory from its jobs) for a whole workflow."""
from __future__ import annotations

import json
import subprocess
import sys

_CALL = ("import importlib, json, sys; module, name = sys.argv[1].rsplit('.', 1); "
         "print(json.dumps(getattr(importlib.import_module(module), name)(**json.loads(sys.argv[2]))))")


def call_in_child(function: str, timeout: float = 300, **arguments):
    """``function(**arguments)`` (a dotted name; arguments and result in JSON) in a child process; a
    RuntimeError with the child's error when it fails."""
    done = subprocess.run([sys.executable, "-c", _CALL, function, json.dumps(arguments)],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{function} failed in a child process: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
