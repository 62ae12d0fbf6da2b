"""Verify: run the eager model and an artifact on the example and on seeded inputs across each dynamic dim's
range (`cases`), compare every output leaf (`compare`), and report every mismatch (`report`, `outputs`).

May import: `runtime`, `artifact`, `compile` (the casts a --dtype build puts inside, so the reference is wrapped the same way), `target`, and the base (`errors`, `progress`); not `benchmark`, which sits above it
and checks outputs with verify's comparison.
"""
