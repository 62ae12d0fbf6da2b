"""Region archives (partial AOT), the file format: the zip of packages, weights and `pt2kit/regions.json`.

    archive.py  the region archive: packages, weights, `pt2kit/regions.json`

Opening a block's package with its own weights and swapping the regions into a model is
`pt2kit.runtime.regions`; building an archive is `pt2kit.partial`'s work.

May import: the rest of `artifact`, `errors`.
"""
