"""Logging setup for tidelake processes: one call from the entry point, never at import."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

#: Libraries that log every connection and rebalance at INFO; kept at WARNING unless --verbose.
NOISY_LOGGERS = ("faust", "mode", "urllib3", "uvicorn.access")
#: Kafka clients log each refused connection as ERROR while retrying; tidelake turns the outcome
#: into one error of its own (BrokerUnavailable), so their lines are shown only with --verbose.
CLIENT_LOGGERS = ("kafka", "aiokafka")


def setup_logging(verbose: bool = False) -> None:
    """Send logs to stderr (stdout is kept for results and --json lines)."""
    level = logging.DEBUG if verbose else logging.INFO
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.CRITICAL)
