"""Region archives (partial AOT) at run time: open each region's package with its block's own weights, and swap
the regions into a model the user's code built.

    blocks.py   one block's region: its group's package opened with the block's own weights
    apply.py    `apply_regions`: swap the regions into the user's model; eager fallback outside the contract

The archive format (packages, weights, `pt2kit/regions.json`) is `pt2kit.artifact.regions.archive`; building an
archive is `pt2kit.partial`'s work. This half lives with the runtime so `pt2kit verify` and `pt2kit.load` can
apply archives without importing the build side.

May import: the rest of `runtime`, `artifact`, `errors`.
"""
