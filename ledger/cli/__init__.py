"""The `alluvial` command line (SPEC 6): the group and its commands, one module per area.

The commands that start the web layer (`serve`, `demo`) live in ``webui.commands`` and
join the group through the ``alluvial.commands`` entry points, so this package never
imports ``webui``.
"""

from ledger.cli import accounts, bundle, custody, log, stats, zones
from ledger.cli.app import cli, main

__all__ = ["accounts", "bundle", "cli", "custody", "log", "main", "stats", "zones"]
