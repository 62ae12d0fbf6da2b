"""Pin the public surface: a change to pt2kit.__all__ must be deliberate."""

import subprocess
import sys

import pt2kit

EXPECTED = sorted(pt2kit.__all__)


def test_all_is_sorted_and_resolves():
    assert list(pt2kit.__all__) == EXPECTED
    for name in pt2kit.__all__:
        assert getattr(pt2kit, name) is not None, name


def test_import_and_help_do_not_import_torch():
    code = "import sys, pt2kit; import pt2kit.cli; pt2kit.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
