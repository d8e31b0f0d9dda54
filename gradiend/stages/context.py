"""How a stage runs inside a Snakemake job: its log file and its CPU thread budget."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

from gradiend.util.logging import LOG_FORMAT, get_logger

logger = get_logger("gradiend.stages")


@contextlib.contextmanager
def rule_context(log_path: str, threads: int | None = None) -> Iterator[None]:
    """Run a stage inside a Snakemake job: log to ``log_path``, use at most ``threads`` CPU threads.

    Everything the ``gradiend`` loggers and Python warnings emit goes to the rule's log file (and
    still to stderr); an exception is logged with its traceback before it propagates, so the log
    alone explains a failed job.
    """
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    watched = [logging.getLogger("gradiend"), logging.getLogger("py.warnings")]
    previous_levels = [w.level for w in watched]
    for watched_logger in watched:
        watched_logger.addHandler(handler)
        watched_logger.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield
    except BaseException:
        logger.exception("stage failed")
        raise
    finally:
        logging.captureWarnings(False)
        for watched_logger, level in zip(watched, previous_levels):
            watched_logger.removeHandler(handler)
            watched_logger.setLevel(level)
        handler.close()
