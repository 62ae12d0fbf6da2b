"""The Python-free deployment path: a small C++ program that runs an AOTInductor package.

`pt2kit_runner.cpp` and `CMakeLists.txt` in this folder are the template; `build_cpp_runner`
copies them to a folder and builds them with CMake against the libtorch inside the
installed torch wheel. See docs/cpp-runner.md.

May import: `artifact` (the package format it runs) and the base (`errors`, `progress`); not `compile`
(it runs a package, it does not build one).
"""

from pt2kit.cpp.runner import CppRunner, build_cpp_runner, run_cpp_runner

__all__ = ["CppRunner", "build_cpp_runner", "run_cpp_runner"]
