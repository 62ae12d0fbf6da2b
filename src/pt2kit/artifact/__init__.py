"""The artifact, what is in the file: `.pt2` I/O with atomic writes (`package`), the manifest stored inside it
(`manifest`, checked field by field by `manifest_check`, size expressions by `size_expr`), the input contract
(`contract`), `inspect` (`inspection`), the pytree types a manifest names (`registration`) and the region archive
format (`regions`). Every stage after export reads or writes this format, so it sits low: it knows nothing of how
a model is captured, compiled, checked or even opened (that is `pt2kit.runtime`, one layer above).

May import: `target`, `pytrees`, the base (`errors`, `tables`) and `pt2kit.__version__` (written into each
manifest).
"""
