"""Which TorchScript cases convert and verify: torch's `TS2EPConverter` alone vs `pt2kit migrate`.

    python benchmarks/coverage/migrate.py [--bert] [--out benchmarks/coverage/migrate.md]

For every case in tests/migrate_cases (plus a traced tiny BERT with `--bert`) it saves the model as a TorchScript
archive, reloads it, and:

- converter alone: `TS2EPConverter(module, example).convert()`, then compares `program.module()` with the scripted
  module on the same inputs pt2kit verifies with: the example, 4 seeded random inputs at the example's sizes, 4 at
  other sizes of each dynamic dim the case declares (the converter marks every dim `Dim.AUTO`, so its program
  accepts them), and the inputs pt2kit steers to each side of every scripted `if`. A call that raises counts as
  a failure, as does any output differing beyond float32 tolerance (atol 1e-5, rtol 1.3e-6 scaled as
  torch.testing.assert_close does).
- pt2kit: `migrate_model(..., verify=True, samples=4)`.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_model  # noqa: E402
from migrate_cases import CASES, build_archive, load_case  # noqa: E402

from pt2kit import progress  # noqa: E402
from pt2kit.migrate import migrate_model  # noqa: E402
from pt2kit.migrate.archive import example_inputs, load_archive  # noqa: E402
from pt2kit.migrate.branches import find_conditions, steer  # noqa: E402
from pt2kit.shapes.spec import parse_dynamic  # noqa: E402
from pt2kit.target.inputs import parse_input  # noqa: E402


def _inputs_to_check(archive, args, dynamic: str | None, seed: int = 0) -> list[tuple[str, tuple]]:
    generator = torch.Generator().manual_seed(seed)

    def like(a, shape):
        return torch.randn(shape, generator=generator).to(a.dtype) if a.is_floating_point() else a

    cases = [("example", args)]
    cases += [(f"random {i}", tuple(like(a, a.shape) if isinstance(a, torch.Tensor) else a for a in args)) for i in range(4)]
    for entry in parse_dynamic(dynamic).entries:
        index = archive.parameters.index(entry.input)
        low, high = entry.min or 1, entry.max or 64
        for size in (low, high, (low + high) // 2, low + 1):
            shape = list(args[index].shape)
            shape[entry.dim] = size
            changed = args[:index] + (like(args[index], shape),) + args[index + 1:]
            cases.append((f"{entry.input}.shape[{entry.dim}]={size}", changed))
    dims = {(e.input, e.dim): (e.min or 1, e.max) for e in parse_dynamic(dynamic).entries}
    for condition in find_conditions(archive.module, archive.parameters):
        for side in (True, False):
            if condition.steerable:
                steered = steer(condition, args, archive.parameters, side, dims)
                if steered is not None:
                    cases.append((f"{condition.describe()} -> {side}", steered))
    return cases


def converter_alone(archive_path: Path, args: tuple, dynamic: str | None) -> tuple[str, str]:
    """(converted, verified) for torch's converter on its own."""
    from torch._export.converter import TS2EPConverter

    module = torch.jit.load(str(archive_path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = TS2EPConverter(torch.jit.load(str(archive_path)), args).convert()
    except Exception as exc:  # noqa: BLE001 - recorded in the table
        cause = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        return "no", " ".join(str(cause).split())[:90]
    archive = load_archive(archive_path)
    raised, differ = [], []
    checks = _inputs_to_check(archive, args, dynamic)
    for label, inputs in checks:
        with torch.no_grad():
            expected = module(*inputs)
            try:
                got = program.module()(*inputs)
            except Exception as exc:  # noqa: BLE001 - a guard or an error: the program refuses the input
                raised.append(f"{label}: {' '.join(str(exc).split())[:60]}")
                continue
        try:
            torch.testing.assert_close(got, expected)
        except AssertionError:
            differ.append(label)
    if differ:
        return "yes", f"**no**: {len(differ)} of {len(checks)} inputs give different outputs ({differ[0]})"
    if raised:
        return "yes", f"{len(checks) - len(raised)} of {len(checks)} match; the rest raise ({raised[0]})"
    return "yes", f"yes ({len(checks)} inputs)"


def run_case(name: str, folder: Path) -> dict:
    case = load_case(name)
    path = build_archive(case, folder / f"{name}.pt")
    archive = load_archive(path)
    args, _ = example_inputs(archive, [parse_input(s) for s in case.inputs])
    dynamic = getattr(case, "dynamic", None)
    converted, verified = converter_alone(path, args, dynamic)
    start = time.perf_counter()
    result = migrate_model(path, folder / f"{name}.pt2", inputs=[parse_input(s) for s in case.inputs], dynamic=dynamic,
                           verify=True, samples=4)
    seconds = time.perf_counter() - start
    checked = len(result.verification.cases) + sum(b.report is not None for b in result.branches) if result.verification else 0
    pt2kit_cell = (f"yes: `{result.strategy}`, {checked} inputs" if result.ok else
                   f"no: {len(result.blockers)} blocker(s), first at line {result.blockers[0].location.line}"
                   if result.blockers else "no")
    return {"case": name, "doc": (case.__doc__ or "").strip().split("\n")[0], "ts2ep": converted, "ts2ep_verified": verified,
            "pt2kit": pt2kit_cell, "seconds": seconds, "takes": _takes(result, dynamic)}


def _takes(result, dynamic: str | None) -> str:
    """The inputs the written program accepts, with its dynamic dims, and whether --dynamic was kept."""
    if result.manifest is None:
        return "-"
    text = "; ".join(result.manifest.describe(leaf) for leaf in result.manifest.inputs)
    text += "".join(f", {d.name} in [{d.min}, {d.max}]" for d in result.manifest.dims)
    if dynamic and not result.manifest.dims:
        text += f" (asked `{dynamic}`: made static, reported)"
    return text


def bert_case(folder: Path) -> dict:
    import transformers

    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64, torchscript=True, return_dict=False)
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(model, (torch.randint(0, 100, (2, 16)), torch.ones(2, 16, dtype=torch.long))),
                       str(folder / "bert.pt"))
    archive = load_archive(folder / "bert.pt")
    args, _ = example_inputs(archive, [])
    converted, verified = converter_alone(folder / "bert.pt", args, None)
    start = time.perf_counter()
    result = migrate_model(folder / "bert.pt", folder / "bert.pt2", verify=True, samples=4)
    seconds = time.perf_counter() - start
    cell = f"yes: `{result.strategy}`, {len(result.verification.cases)} inputs" if result.ok else "no"
    return {"case": "bert (traced)", "doc": "transformers BertModel, 2 layers, hidden 32, traced with torch.jit.trace",
            "ts2ep": converted, "ts2ep_verified": verified, "pt2kit": cell, "seconds": seconds, "takes": _takes(result, None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bert", action="store_true", help="add a traced tiny BERT (needs transformers)")
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    options = parser.parse_args()
    progress.set_quiet(True)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            rows.append(run_case(name, Path(tmp)))
            print(rows[-1], file=sys.stderr)
        if options.bert:
            rows.append(bert_case(Path(tmp)))
    cpu = cpu_model()
    lines = [
        "# `pt2kit migrate` vs torch's `TS2EPConverter` alone", "",
        f"`python benchmarks/coverage/migrate.py{' --bert' if options.bert else ''}`", "",
        f"- Machine: {cpu}, {torch.get_num_threads()} threads; torch {torch.__version__}, Python {platform.python_version()}; "
        f"{datetime.date.today().isoformat()}; load while measuring: `{load.split('load average:')[-1].strip()}`.",
        "- converted: the converter returned a program. verified: the program matches the scripted module on the "
        "example, 4 random inputs, 4 sizes across each dynamic dim the case declares, and inputs steered to each "
        "side of each scripted `if` (see the script's docstring). pt2kit: the strategy that produced the written "
        "program and the inputs it was verified on (`migrate --verify --samples 4`).", "",
        "| case | what it is | TS2EPConverter converts | ...and matches | pt2kit migrate | program takes | pt2kit s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {r['case']} | {r['doc']} | {r['ts2ep']} | {r['ts2ep_verified']} | {r['pt2kit']} | {r['takes']} | "
              f"{r['seconds']:.1f} |" for r in rows]
    converts = sum(r["ts2ep"] == "yes" for r in rows)
    matches = sum(r["ts2ep_verified"].startswith("yes") for r in rows)
    written = sum(r["pt2kit"].startswith("yes") for r in rows)
    lines += ["", f"Torch's converter alone returns a program for {converts} of {len(rows)} cases; {matches} of them match "
              f"the scripted model on every input above. `pt2kit migrate` writes a verified program for {written} of "
              f"{len(rows)}; for the rest it names each blocker's line and the fix. A program that takes only the "
              "example's sizes says so in its notes and manifest."]
    text = "\n".join(lines) + "\n"
    print(text)
    if options.out:
        options.out.write_text(text)


if __name__ == "__main__":
    main()
