"""Provenance bundles (SPEC 7): building one from the ledger (``build``), and the offline
verifier (``format``, ``replay``, ``windows``, ``verify``, ``jcs``).

The verifier modules import only the standard library, ``cryptography``, ``ledger.errors``
and ``ledger.log``'s merkle, keys and checkpoint, so they can be vendored or ported alone;
``build`` may also import the foundation, ``ledger.log`` and ``ledger.custody``.
"""
