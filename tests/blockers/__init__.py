"""Blocker corpus for `pt2kit diagnose`: one tiny model per file (ExportDB style).

Each file has a docstring, `model`, `example_args`, optionally `dynamic` (a `--dynamic` spec) and
`mode` (the capture mode the model must export in). Every line diagnose must report carries a
trailing `# blocker: KIND` comment; tests/test_diagnose.py reads the expected lines from them.
"""
