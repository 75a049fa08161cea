"""Writing to the ledger: the ``Ledger`` that validates, judges, screens, appends and
projects each event in one transaction; bulk ingest; rescreen of the whole history.

May import: the foundation, ``ledger.log``, ``ledger.custody`` and ``ledger.geo``.
"""
