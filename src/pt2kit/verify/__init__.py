"""Verify: run the eager model and an artifact on the example and on seeded inputs across each dynamic dim's
range (`cases`), compare every output leaf (`compare`), and report every mismatch (`report`, `outputs`).

May import: the layers below it (`compile`, `export`, `artifact`, `target`, ...); not `benchmark`, its peer, and
the base (`errors`, `progress`).
"""
