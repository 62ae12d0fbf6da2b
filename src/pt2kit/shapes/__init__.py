"""Dynamic shapes: the `--dynamic` grammar (`spec`), a spec inferred from sample inputs (`inference`), and
repair from torch's suggested fixes (`suggested_fixes`, `repair`, and what it did: `report`).

May import: `capture`, `target`, and the base (`errors`).
"""
