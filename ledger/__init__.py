"""Alluvial Ledger: a tamper-evident custody ledger for artisanal alluvial diamonds."""

__version__ = "0.1.0"
