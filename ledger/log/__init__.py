"""The log: canonical encoding, the Merkle tree, checkpoints and keys, the append-only store,
and the verifier of the whole log (SPEC 3).

May import: the standard library, the ``ledger`` foundation (errors, config, db) and itself.
"""
