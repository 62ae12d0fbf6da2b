"""25 transformers architectures (tests/architectures.py), exported static and with dynamic batch and
sequence dims, each verified against eager through the survey machinery; decoders return their cache."""

from pathlib import Path

import pytest

pytest.importorskip("transformers")

import architectures  # noqa: E402  (tests/ is on sys.path through conftest)

from pt2kit import progress  # noqa: E402
from pt2kit.survey.run import SurveyOptions, survey_models  # noqa: E402
from pt2kit.survey.targets import collect_entries  # noqa: E402

FILE = str(Path(architectures.__file__))
NAMES = list(architectures.SURVEY)
CACHE_TYPES = {"decoder": "DynamicCache", "encoder-decoder": "EncoderDecoderCache"}
@pytest.fixture(scope="module")
def report():
    """Every architecture, static and dynamic, export + verify (the example and the dims' bounds)."""
    progress.set_quiet(True)
    try:
        return survey_models(collect_entries([FILE]), SurveyOptions(stages=("export", "verify"), shapes=("static", "dynamic")))
    finally:
        progress.set_quiet(False)


def test_the_set_covers_every_family():
    families = [entry["family"] for entry in architectures.SURVEY.values()]
    assert len(NAMES) >= 20
    assert {f: families.count(f) for f in set(families)}.keys() == {"encoder", "decoder", "encoder-decoder", "vision", "audio"}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shapes", ["static", "dynamic"])
def test_exports_and_matches_eager(report, name, shapes):
    row = next(r for r in report.rows if r.name == name and r.shapes == shapes)
    assert row.ok, f"{name} [{shapes}]: {row.blocker}: " + "; ".join(s.message for s in row.stages if s.message)
    if shapes == "dynamic":
        assert "batch" in row.dynamic and row.dynamic == architectures.SURVEY[name]["dynamic"]
    family = architectures.SURVEY[name]["family"]
    expected_cache = CACHE_TYPES.get(family) or ("EncoderDecoderCache" if name == "whisper" else None)
    if expected_cache:  # use_cache=True: the program returns the cache object, registered by pt2kit
        assert expected_cache in {t.rpartition(".")[2] for t in row.pytree_types}, row.pytree_types


@pytest.mark.slow
def test_a_decoder_compiles_with_its_cache_output(tmp_path):
    """AOTInductor on CPU for one decoder: the package returns the DynamicCache and matches eager."""
    progress.set_quiet(True)
    try:
        result = survey_models(collect_entries([f"{FILE}:gpt2"]), SurveyOptions(stages=("export", "verify", "compile"),
                                                                        shapes=("dynamic",), samples=1, workdir=str(tmp_path)))
    finally:
        progress.set_quiet(False)
    (row,) = result.rows
    assert row.ok, row
    assert (tmp_path / "gpt2-dynamic.aoti.pt2").is_file()
