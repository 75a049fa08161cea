"""The `alluvial` command line (SPEC 6): the group and its commands, one module per area."""

from ledger.cli import accounts, bundle, custody, demo, log, serve, zones
from ledger.cli.app import cli, main

__all__ = ["accounts", "bundle", "cli", "custody", "demo", "log", "main", "serve", "zones"]
