"""`pt2kit survey`: targets from SURVEY files and lists, failures isolated per row, the table and the JSON."""

import pytest

from conftest import case, check_one_line_error

SURVEY_FILE = case("survey_models")


@pytest.fixture(scope="module")
def survey_json(tmp_path_factory):
    """The three models of tests/cases/survey_models.py, static and with a dynamic batch."""
    from pt2kit import progress
    from pt2kit.survey.run import SurveyOptions, survey_models
    from pt2kit.survey.targets import collect_entries

    progress.set_quiet(True)
    try:
        report = survey_models(collect_entries([SURVEY_FILE]), SurveyOptions(shapes=("static", "dynamic"), dynamic_batch=True))
    finally:
        progress.set_quiet(False)
    return report


def _row(report, name, shapes):
    return next(r for r in report.rows if r.name == name and r.shapes == shapes)


def test_every_row_runs_and_failures_carry_their_blocker(survey_json):
    report = survey_json
    assert [(r.name, r.shapes) for r in report.rows] == [
        ("mlp", "static"), ("mlp", "dynamic"), ("branchy", "static"), ("branchy", "dynamic"), ("broken", "static"), ("broken", "dynamic")]
    mlp = _row(report, "mlp", "dynamic")
    assert mlp.ok and mlp.dynamic == "x:0=batch[1,64]"
    assert [s.status.value for s in mlp.stages] == ["ok", "ok"]
    branchy = _row(report, "branchy", "static")
    assert branchy.blocker == "data_dependent_branch"
    assert branchy.stage("verify").status.value == "skipped"
    broken = _row(report, "broken", "static")
    assert broken.blocker == "target_error" and "fails on purpose" in broken.stage("export").message
    assert report.counts() == {"rows": 6, "ok": 2, "export": 2, "verify": 2}
    assert not report.ok


def test_table_lists_each_row_and_each_failure(survey_json):
    text = str(survey_json)
    header, *rest = text.splitlines()
    assert header.split() == ["target", "shapes", "export", "verify", "time", "note"]
    assert "2/6 rows passed every stage; export 2/6, verify 2/6" in text
    assert "branchy [static] export: data_dependent_branch:" in text
    assert "broken [dynamic] export: target_error: RuntimeError: this factory fails on purpose" in text


def test_cli_json_is_one_document_with_the_documented_fields(cli):
    result = cli("survey", f"{SURVEY_FILE}:mlp", "--json", "--stages", "export")
    assert result.code == 0, result.err
    data = result.json()
    assert set(data) == {"ok", "stages", "device", "torch", "created", "seconds", "interrupted", "planned", "counts", "rows"}
    assert not data["interrupted"] and data["planned"] == 1
    (row,) = data["rows"]
    assert set(row) == {"name", "target", "shapes", "dynamic", "ok", "blocker", "seconds", "stages", "pytree_types", "notes"}
    assert row["target"] == f"{SURVEY_FILE}:mlp" and row["stages"]["export"]["status"] == "ok"
    assert data["counts"] == {"rows": 1, "ok": 1, "export": 1}


def test_from_file_takes_per_line_inputs_and_dynamic_specs(cli, tmp_path):
    targets = tmp_path / "targets.txt"
    targets.write_text(
        "# one target a line\n"
        f"{case('linear_relu')}:model --input input=float32[4,16] --dynamic input:0=batch[1,32]\n"
        f"{case('dataclass_output')}:model   # its own example_args and dynamic spec\n"
    )
    result = cli("survey", "--from", targets, "--shapes", "dynamic", "--json")
    assert result.code == 0, result.out
    rows = result.json()["rows"]
    assert [r["dynamic"] for r in rows] == ["input:0=batch[1,32]", "x:0=batch[1,32]"]
    assert [t.rpartition(".")[2] for t in rows[1]["pytree_types"]] == ["Detections", "Stats"]


def test_static_model_without_dims_says_it_stayed_static(cli):
    result = cli("survey", f"{case('linear_relu')}:model", "--shapes", "dynamic", "--stages", "export", "--json")
    (row,) = result.json()["rows"]
    assert row["dynamic"] == "" and "no dynamic dims declared" in row["notes"][0]


@pytest.mark.parametrize("args, needle", [
    (["--stages", "export,bench"], "unknown stage `bench`"),
    (["--shapes", "huge"], "unknown shape variant `huge`"),
    (["--stages", "verify"], "must include `export`"),
])
def test_bad_options_are_one_line_errors(cli, args, needle):
    check_one_line_error(cli("survey", f"{case('linear_relu')}:model", *args), needle)


def test_bad_list_line_and_no_targets_are_one_line_errors(cli, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{case('linear_relu')}:model --bogus 3\n")
    check_one_line_error(cli("survey", "--from", bad), "line 1", "unexpected `--bogus 3`")
    check_one_line_error(cli("survey"), "nothing to survey")


def test_isolated_rows_survive_a_crashing_process(cli, tmp_path):
    crasher = tmp_path / "crasher.py"
    crasher.write_text(
        "import os, torch\n"
        "class Crash(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        os._exit(3)  # the process dies, as a segfaulting kernel would\n"
        "SURVEY = {'crash': {'model': Crash, 'args': (torch.ones(2),)}}\n"
    )
    result = cli("survey", crasher, f"{case('linear_relu')}:model", "--isolate", "--timeout", "300",
                 "--stages", "export", "--input", "input=float32[2,16]", "--json")
    rows = result.json()["rows"]
    assert result.code == 1
    assert rows[0]["blocker"] == "crash" and "exit code 3" in rows[0]["stages"]["export"]["message"]
    assert rows[1]["ok"], rows[1]
