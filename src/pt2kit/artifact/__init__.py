"""The artifact: `.pt2` I/O with atomic writes (`package`), the manifest stored inside it (`manifest`), the
input contract (`contract`), `pt2kit.load` (`runtime`), `run` (`execution`) and `inspect` (`inspection`).

May import: `target`, `pytrees`, `shapes.spec`, `compile.loader`.
"""
