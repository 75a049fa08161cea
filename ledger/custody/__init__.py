"""Chain of custody: the event envelope and schemas, the rules a write must pass, the
in-memory state they judge against, and the custody graph traced forward and back (SPEC 4).

May import: the foundation (errors, config, db, projections) and ``ledger.log``.
"""
