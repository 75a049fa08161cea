"""The `alluvial` command line (SPEC 6): the group and its commands, one module per area."""

from ledger.cli import custody, log, zones
from ledger.cli.app import cli, main

__all__ = ["cli", "custody", "log", "main", "zones"]
