"""Pin the public surface: adding or removing a public name must change this file too."""

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pt2kit

PUBLIC = [
    "Artifact", "ArtifactError", "BenchMode", "BenchReport", "BenchRow", "Blocker", "BlockerKind",
    "BuildFailed", "CaptureMode", "CaseError", "CompileResult", "CppRunner", "Diagnosis", "DimEntry",
    "DimRange", "DimRelation", "DynamicSpec", "ExportFailed", "ExportResult", "FixFailed", "FixResult",
    "InputMismatchError", "InputSpec", "InputSpecError", "Inspection", "LeafSpec", "Manifest", "MigrateResult", "Mismatch",
    "MismatchKind", "OutputCheck", "PartialResult", "Pt2kitError", "Refusal", "RefusalReason", "RepairReport", "RunResult",
    "ShapeInference", "ShapeRepair", "SurveyOptions", "SurveyReport", "Target", "TargetError",
    "TensorFileError", "TuneReport", "UsageError", "VerifyReport", "__version__", "apply_regions", "bench", "build_cpp_runner",
    "compile_package", "compile_regions", "diagnose_model", "export_program", "find_non_pytree", "fix_model", "infer_dynamic",
    "infer_shapes", "inspect_artifact", "load", "load_target", "migrate_model", "parse_dynamic", "parse_input", "register_types", "run_artifact",
    "survey_models", "tune_model", "verify_outputs", "write_plot", "write_verified",
]


def test_public_names_are_pinned_and_resolve():
    assert list(pt2kit.__all__) == PUBLIC
    assert PUBLIC == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(pt2kit, name) is not None, name


def test_import_and_help_do_not_import_torch():
    code = "import sys, pt2kit; import pt2kit.cli; pt2kit.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_no_public_function_shares_a_name_with_a_submodule():
    """Issue 12.4: importing a submodule binds its name on the package, so a function of the same name
    (`pt2kit.diagnose` the function vs `pt2kit.diagnose` the package) would change meaning with import order."""
    submodules = [m.name for m in pkgutil.walk_packages(pt2kit.__path__, "pt2kit.") if m.name != "pt2kit.__main__"]
    for name in submodules:
        importlib.import_module(name)
    children = {name.split(".")[1] for name in submodules}
    clashes = sorted(children & set(pt2kit.__all__))
    assert not clashes, f"public names that are also submodules of pt2kit: {clashes}"
    for name in pt2kit.__all__:
        value = getattr(pt2kit, name)
        assert not inspect.ismodule(value), f"pt2kit.{name} is a module once every submodule is imported"
        if name != "__version__":
            assert callable(value), f"pt2kit.{name} is not callable"
        if inspect.isfunction(value):
            assert inspect.getdoc(value), f"pt2kit.{name} has no docstring"
