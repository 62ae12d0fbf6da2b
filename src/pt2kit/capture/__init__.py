"""Capture a model with `torch.export` (`capture`: strategies, attempts, where a failure came from) and the
checks run on a capture: shape decisions export baked in (`specialization`) and size branches found by a
re-trace (`shape_branches`). Diagnosis, rewrites, shape repair and the export stage all build on it.

May import: `artifact` and the base (`errors`).
"""
