"""pt2kit: ahead-of-time deployment of PyTorch models.

target -> export -> diagnose -> fix -> dynamic shapes -> .pt2 -> AOTInductor -> verify -> bench -> run

`__all__` holds the pipeline functions, their result types and the errors; no public function shares its
name with a submodule (`diagnose_model`, not `diagnose`), so a name means the same whatever was imported.

    >>> import pt2kit
    >>> target = pt2kit.load_target("model.py:model")
    >>> result = pt2kit.export_program(target, "model.pt2", dynamic="x:0=batch[1,64]")
    >>> model = pt2kit.load("model.pt2")
"""

__version__ = "0.1.0"

from pt2kit.lazy import lazy_exports

# Names resolve lazily (PEP 562) so `import pt2kit` and `pt2kit --help` do not import torch.
_EXPORTS = {
    "BenchMode": "pt2kit.benchmark", "BenchReport": "pt2kit.benchmark", "BenchRow": "pt2kit.benchmark", "bench": "pt2kit.benchmark",
    "write_plot": "pt2kit.benchmark.plot", "CppRunner": "pt2kit.cpp", "build_cpp_runner": "pt2kit.cpp",
    "CaptureMode": "pt2kit.capture.capture",
    "Blocker": "pt2kit.diagnose", "BlockerKind": "pt2kit.diagnose", "Diagnosis": "pt2kit.diagnose", "diagnose_model": "pt2kit.diagnose",
    "ArtifactError": "pt2kit.errors", "BuildFailed": "pt2kit.errors", "ExportFailed": "pt2kit.errors", "InputMismatchError": "pt2kit.errors",
    "InputSpecError": "pt2kit.errors", "Pt2kitError": "pt2kit.errors", "TargetError": "pt2kit.errors",
    "TensorFileError": "pt2kit.errors", "UsageError": "pt2kit.errors",
    "InputSpec": "pt2kit.target.inputs", "parse_input": "pt2kit.target.inputs",
    "Inspection": "pt2kit.artifact.inspection", "inspect_artifact": "pt2kit.artifact.inspection",
    "RunResult": "pt2kit.runtime.execution", "run_artifact": "pt2kit.runtime.execution",
    "DimRange": "pt2kit.artifact.manifest", "LeafSpec": "pt2kit.artifact.manifest", "Manifest": "pt2kit.artifact.manifest",
    "ExportResult": "pt2kit.export.program", "export_program": "pt2kit.export.program",
    "MigrateResult": "pt2kit.migrate", "migrate_model": "pt2kit.migrate",
    "FixFailed": "pt2kit.errors", "FixResult": "pt2kit.rewrite.fix", "fix_model": "pt2kit.rewrite.fix",
    "Refusal": "pt2kit.rewrite", "RefusalReason": "pt2kit.rewrite",
    "Artifact": "pt2kit.runtime.loaded", "load": "pt2kit.runtime.loaded",
    "register_types": "pt2kit.artifact.registration",
    "CompileResult": "pt2kit.compile", "compile_package": "pt2kit.compile",
    "PartialResult": "pt2kit.partial", "apply_regions": "pt2kit.partial", "compile_regions": "pt2kit.partial",
    "DimEntry": "pt2kit.shapes.spec", "DynamicSpec": "pt2kit.shapes.spec", "parse_dynamic": "pt2kit.shapes.spec",
    "ShapeInference": "pt2kit.shapes.inference", "infer_dynamic": "pt2kit.shapes.inference", "infer_shapes": "pt2kit.shapes.inference",
    "RepairReport": "pt2kit.shapes.repair", "ShapeRepair": "pt2kit.shapes.repair", "DimRelation": "pt2kit.artifact.manifest",
    "Target": "pt2kit.target.resolve", "load_target": "pt2kit.target.resolve",
    "CaseError": "pt2kit.verify.outputs", "Mismatch": "pt2kit.verify.outputs", "OutputCheck": "pt2kit.verify.outputs",
    "VerifyReport": "pt2kit.verify.outputs", "verify_outputs": "pt2kit.verify.outputs", "write_verified": "pt2kit.verify.outputs",
    "MismatchKind": "pt2kit.verify.compare",
    "SurveyOptions": "pt2kit.survey.run", "SurveyReport": "pt2kit.survey.report", "survey_models": "pt2kit.survey.run",
    "find_non_pytree": "pt2kit.pytrees.types",
    "TuneReport": "pt2kit.tune", "tune_model": "pt2kit.tune",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__():
    return sorted(__all__)


__all__ = [
    "Artifact",
    "ArtifactError",
    "BenchMode",
    "BenchReport",
    "BenchRow",
    "Blocker",
    "BlockerKind",
    "BuildFailed",
    "CaptureMode",
    "CaseError",
    "CompileResult",
    "CppRunner",
    "Diagnosis",
    "DimEntry",
    "DimRange",
    "DimRelation",
    "DynamicSpec",
    "ExportFailed",
    "ExportResult",
    "FixFailed",
    "FixResult",
    "InputMismatchError",
    "InputSpec",
    "InputSpecError",
    "Inspection",
    "LeafSpec",
    "Manifest",
    "MigrateResult",
    "Mismatch",
    "MismatchKind",
    "OutputCheck",
    "PartialResult",
    "Pt2kitError",
    "Refusal",
    "RefusalReason",
    "RepairReport",
    "RunResult",
    "ShapeInference",
    "ShapeRepair",
    "SurveyOptions",
    "SurveyReport",
    "Target",
    "TargetError",
    "TensorFileError",
    "TuneReport",
    "UsageError",
    "VerifyReport",
    "__version__",
    "apply_regions",
    "bench",
    "build_cpp_runner",
    "compile_package",
    "compile_regions",
    "diagnose_model",
    "export_program",
    "find_non_pytree",
    "fix_model",
    "infer_dynamic",
    "infer_shapes",
    "inspect_artifact",
    "load",
    "load_target",
    "migrate_model",
    "parse_dynamic",
    "parse_input",
    "register_types",
    "run_artifact",
    "survey_models",
    "tune_model",
    "verify_outputs",
    "write_plot",
    "write_verified",
]
