"""Package logging: one ``gradiend`` logger hierarchy, configured once by the caller."""
from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    """Module logger under the ``gradiend`` namespace."""
    return logging.getLogger(name if name.startswith("gradiend") else f"gradiend.{name}")


def setup_logging(level: int | str = logging.INFO) -> None:
    """Send ``gradiend`` logs to stderr at ``level`` (idempotent)."""
    logger = logging.getLogger("gradiend")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
