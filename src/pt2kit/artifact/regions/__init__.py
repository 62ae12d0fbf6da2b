"""Region archives (partial AOT) at run time: read one, open each region's package with its block's own weights,
and swap the regions into a model the user's code built.

    archive.py  the region archive: packages, weights, `pt2kit/regions.json`
    blocks.py   one block's region: its group's package opened with the block's own weights
    apply.py    `apply_regions`: swap the regions into the user's model; eager fallback outside the contract

Building an archive is `pt2kit.partial`'s work; this half lives with the other artifact formats so `pt2kit verify`
and `pt2kit.load` can read archives without importing the build side.

May import: the rest of `artifact`, `errors`.
"""
