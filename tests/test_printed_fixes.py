"""Every fix `pt2kit diagnose` prints as code runs: pasted into the model where its headers say, the model runs
eagerly, exports, and computes what the original computed.

Each case of the blocker corpus (tests/blockers, one tiny model per file, every kind diagnose reports) gets all
its printed fixes pasted at once (`pt2kit.diagnose.fix_text.apply_fix`: `# replaces lines A-B of FILE:`,
`# add before line N of FILE:`, `# add at module level of FILE:`); the pasted files are imported, called and
exported in one fresh process (tests/fix_paste_worker.py), since fixes register operators for good. A fix pt2kit
cannot write as code that runs is advice: prose, no header, nothing to paste.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pt2kit.diagnose import BlockerKind
from pt2kit.diagnose.fix_text import EditKind, apply_fix, parse_fix
from test_diagnose import CASES, diagnosed

WORKER = Path(__file__).resolve().parent / "fix_paste_worker.py"
# the cases whose every fix is advice: there is no code that makes them export (the model itself is wrong,
# or the failure is one pt2kit cannot classify)
ADVICE_ONLY = {"eager_failure", "refuses_export"}
CODE_CASES = [p for p in CASES if p.stem not in ADVICE_ONLY]


@pytest.fixture(scope="module")
def pasted(tmp_path_factory) -> dict[str, dict]:
    """case name -> what the worker found for the case with all its printed fixes pasted in."""
    folder = tmp_path_factory.mktemp("pasted")
    pairs = {}
    for path in CODE_CASES:
        _, diagnosis = diagnosed(path)
        fixes = [b.fix for b in diagnosis.blockers if b.fix_is_code]
        target = folder / path.stem / path.name  # the file's own name: fixes name it (pytree types, operators)
        target.parent.mkdir()
        target.write_text(apply_fix(path.read_text(), *fixes))
        pairs[path.stem] = (target, path)
    proc = subprocess.run([sys.executable, str(WORKER), *(f"{t}={o}" for t, o in pairs.values())],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name: found[str(t)] | {"source": t.read_text()} for name, (t, _) in pairs.items()}


@pytest.mark.parametrize("path", CODE_CASES, ids=lambda p: p.stem)
def test_every_printed_fix_pasted_in_runs_eagerly_and_exports(path, pasted):
    _, diagnosis = diagnosed(path)
    assert diagnosis.blockers and all(b.fix_is_code for b in diagnosis.blockers), str(diagnosis)
    outcome = pasted[path.stem]
    assert outcome["imports"] and outcome["eager"] and outcome["exports"], (outcome["error"], outcome["source"])
    assert outcome["matches_original"] in (True, None), (outcome["error"], outcome["source"])


@pytest.mark.parametrize("name", sorted(ADVICE_ONLY))
def test_a_fix_that_cannot_run_is_advice_not_code(name):
    (path,) = [p for p in CASES if p.stem == name]
    _, diagnosis = diagnosed(path)
    for blocker in diagnosis.blockers:
        assert not blocker.fix_is_code and parse_fix(blocker.fix) == []
        assert not blocker.fix.lstrip().startswith("#") and "\n" not in blocker.fix  # one line of prose
        assert f"  advice: {blocker.fix}" in str(blocker) and blocker.to_json()["fix_is_code"] is False


def test_the_loop_fix_carries_tensors_joins_conditions_as_tensors_and_never_suggests_cond():
    (path,) = [p for p in CASES if p.stem == "while_and_counter"]
    _, diagnosis = diagnosed(path)
    (blocker,) = diagnosis.blockers
    assert "torch.logical_and(" in blocker.fix and " and " not in blocker.fix.split("def cond_fn")[1].split("def body_fn")[0]
    assert "steps = torch.tensor(steps)" in blocker.fix and "steps = steps + 1" in blocker.fix
    assert "torch.cond(" not in blocker.fix and "torch.cond(" not in blocker.explanation
    assert "option:" not in blocker.explanation  # --fix's branch options (torch.cond, torch.where) do not loop


def test_the_custom_op_stub_returns_the_tensor_it_declares():
    (path,) = [p for p in CASES if p.stem == "numpy_statistic"]
    _, diagnosis = diagnosed(path)
    (blocker,) = diagnosis.blockers
    assert blocker.kind is BlockerKind.UNSUPPORTED_PYTHON
    assert "-> torch.Tensor:\n    return torch.tensor(float(np.std(" in blocker.fix and "dtype=torch.float64" in blocker.fix
    kinds = [e.kind for e in parse_fix(blocker.fix)]
    assert kinds == [EditKind.MODULE, EditKind.REPLACE]


def test_fix_sections_paste_where_their_headers_say():
    source = "a = 1\ndef f(x):\n    y = x\n    return y\n"
    fix = "# why\n# replaces lines 3-3 of m.py:\ny = x + 1\n# add before line 4 of m.py:\nz = 2\n" \
          "# add at module level of m.py:\nB = 3\n# or something else:\nC = 4"
    assert apply_fix(source, fix) == "a = 1\ndef f(x):\n    y = x + 1\n    z = 2\n    return y\n\nB = 3\n"
    assert parse_fix("Export without strict mode: `strict=False`.") == []
