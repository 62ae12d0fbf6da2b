"""The export stage (`program`): `export_program` takes a target through capture (with shape repair and,
on request, the `--fix` rewrites), the checks on what was captured, and writes the `.pt2` with its manifest.

It orchestrates the packages below it; the capture itself lives in `capture`.

May import: `rewrite`, `shapes`, `capture`, `artifact`, `target`, `pytrees`, and the base (`errors`,
`progress`); not `diagnose`, its peer.
"""
