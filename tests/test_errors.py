"""Every bad-input path: one line on stderr, the right exit code, no traceback, no file left behind."""

import zipfile

import pytest

from conftest import case, check_one_line_error


def test_missing_model_file(cli, tmp_path):
    check_one_line_error(cli("export", "nope/model.py:model", "-o", tmp_path / "o.pt2"), "`nope/model.py` does not exist")


def test_no_such_attribute_lists_what_is_there(cli, tmp_path):
    check_one_line_error(cli("export", f"{case('seed')}:Missing", "-o", tmp_path / "o.pt2"), "no attribute `Missing`", "ConditionalModel")


def test_attribute_not_a_module(cli, tmp_path):
    check_one_line_error(cli("export", f"{case('seed')}:not_a_module", "-o", tmp_path / "o.pt2"), "`not_a_module` is a int")


def test_target_without_colon_and_unknown_package(cli, tmp_path):
    check_one_line_error(cli("export", "model.py", "-o", tmp_path / "o.pt2"), "path/to/file.py:NAME")
    check_one_line_error(cli("export", "no_such_pkg.mod:model", "-o", tmp_path / "o.pt2"), "no Python module `no_such_pkg.mod`")


def test_file_that_raises_on_import(cli, tmp_path):
    check_one_line_error(cli("export", f"{case('import_error')}:model", "-o", tmp_path / "o.pt2"), "RuntimeError", "import_error.py:4")


def test_malformed_input_spec(cli, tmp_path):
    check_one_line_error(cli("export", f"{case('linear_relu')}:model", "-o", tmp_path / "o.pt2", "-i", "x=float32[4,"), "not a valid input")


def test_input_name_not_a_parameter(cli, tmp_path):
    check_one_line_error(cli("export", f"{case('linear_relu')}:model", "-o", tmp_path / "o.pt2", "-i", "x=float32[4,16]"), "input")


def test_unreadable_tensor_file(cli, tmp_path):
    bad = tmp_path / "x.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    check_one_line_error(cli("export", f"{case('linear_relu')}:model", "-o", tmp_path / "o.pt2", "-i", f"input=@{bad}"), "cannot read tensors")


def test_malformed_dynamic_spec(cli, tmp_path):
    check_one_line_error(cli("export", f"{case('linear_relu')}:model", "-o", tmp_path / "o.pt2", "--dynamic", "input:0=b[1;4]"), "column 12")
    assert not list(tmp_path.iterdir())


def test_missing_truncated_and_corrupt_pt2(cli, linear_program, tmp_path):
    check_one_line_error(cli("inspect", tmp_path / "missing.pt2"), "does not exist")
    truncated = tmp_path / "truncated.pt2"
    truncated.write_bytes(linear_program.read_bytes()[: linear_program.stat().st_size // 2])
    check_one_line_error(cli("run", truncated, "-i", "input=float32[2,16]"), "corrupt or truncated")
    not_zip = tmp_path / "text.pt2"
    not_zip.write_text("hello")
    check_one_line_error(cli("inspect", not_zip), "corrupt or truncated")
    # a valid zip whose weights were damaged: the entry checksum catches it
    damaged = tmp_path / "damaged.pt2"
    with zipfile.ZipFile(linear_program) as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if "weights/weight_" in item.filename and len(data) > 8:
                data = data[:-4] + b"\0\0\0\0"
            dst.writestr(item, data)
    check_one_line_error(cli("run", damaged, "-i", "input=float32[2,16]"), "do not match the checksum")


def test_output_folder_missing(cli, tmp_path):
    check_one_line_error(cli("export", f"{case('linear_relu')}:model", "-o", tmp_path / "no" / "o.pt2"), "does not exist")


def test_export_failure_is_exit_1_and_writes_nothing(cli, tmp_path):
    out = tmp_path / "o.pt2"
    result = cli("export", f"{case('seed')}:untraceable", "-o", out)
    assert result.code == 1 and "Traceback" not in result.err
    assert "seed.py:8" in result.err and "cannot be converted to Scalar" in result.err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_no_command_prints_help(cli):
    assert cli().code == 2


def test_bad_flag_is_usage_error(cli):
    with pytest.raises(SystemExit) as exc:
        cli("export", "--no-such-flag")
    assert exc.value.code == 2
