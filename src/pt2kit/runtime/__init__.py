"""The runtime: how a `.pt2` is opened and called. `pt2kit.load` (`loaded`), the safe fast AOTInductor loader
(`loader`) with its libstdc++ check (`libstdcxx`) and its extraction folders (`extraction`), the model's calling
convention (`calling`), CUDA graph replay (`cuda_graphs`), `pt2kit run` (`execution`) and region archives applied
to a model (`regions`). What is in the file (manifest, package, contract) is `pt2kit.artifact`, one layer below;
nothing here builds or captures anything, so loading never imports the build side.

May import: `artifact`, `target`, `pytrees` and the base (`errors`, `progress`).
"""
