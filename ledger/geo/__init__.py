"""The map: zones and zone files, screening of sites and purchases, and the map's layers
(SPEC 5).

May import: the foundation, ``ledger.log`` and ``ledger.custody`` (the state screening reads).
"""
