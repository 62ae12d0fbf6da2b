"""Pin the public surface: adding or removing a public name must change this file too."""

import subprocess
import sys

import pt2kit

PUBLIC = [
    "Artifact", "ArtifactError", "Attempt", "BenchMode", "BenchReport", "BenchRow", "Blocker", "BlockerKind",
    "BuildFailed", "Capture", "CaptureMode", "CaseError", "CompileResult", "Diagnosis", "DimEntry",
    "DimRange", "DimRelation", "DynamicSpec", "ExportFailed", "ExportResult", "FixFailed", "FixResult",
    "InputMismatchError", "InputSpec", "InputSpecError", "Inspection", "LeafSpec", "Manifest", "Mismatch",
    "MismatchKind", "OutputCheck", "Pt2kitError", "Refusal", "RefusalReason", "RepairReport",
    "ShapeInference", "ShapeRepair", "SourceLocation", "SurveyOptions", "SurveyReport", "Target",
    "TargetError", "TensorFileError", "TuneReport", "TypeReport", "UsageError", "VerifyReport", "__version__", "bench",
    "capture", "collect_entries", "compile_package", "diagnose", "export_program", "find_non_pytree",
    "fix_model", "infer_dynamic", "infer_shapes", "inspect_artifact", "load", "load_target", "parse_dynamic",
    "parse_input", "survey", "tune_model", "verify_outputs",
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
