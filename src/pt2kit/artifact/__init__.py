"""The artifact: `.pt2` I/O with atomic writes (`package`), the manifest stored inside it (`manifest`), the
input contract (`contract`), the safe fast AOTInductor loader (`loader`), `pt2kit.load` (`runtime`), `run`
(`execution`) and `inspect` (`inspection`). Every stage after export reads or writes this format, so it sits
low: it knows nothing of how a model is captured, compiled or checked.

May import: `target`, `pytrees`, the base (`errors`, `progress`, `tables`) and `pt2kit.__version__`
(written into each manifest).
"""
