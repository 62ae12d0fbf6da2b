"""Stage 1, the target: resolve `file.py:NAME` / `pkg.mod:NAME` to a module, its example inputs, and the
`--input` grammar with tensor files, and the `--device` text (device.py).

May import: the base (`errors`) only.
"""
