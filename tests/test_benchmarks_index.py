"""benchmarks/README.md is the index of benchmarks/: it links every record, names every script, and names nothing
that is not there (a moved or removed script shows up here, not when someone tries to rerun it)."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
INDEX = (BENCHMARKS / "README.md").read_text()
REMOVED = INDEX[INDEX.index("## Probes"):INDEX.index("Kept, because")]  # the removed probes' table


def test_index_links_every_record():
    linked = set(re.findall(r"\]\(([\w/]+\.md)\)", INDEX))
    records = {str(p.relative_to(BENCHMARKS)) for p in BENCHMARKS.rglob("*.md") if p.name != "README.md"}
    assert records <= linked, f"link these records from benchmarks/README.md: {sorted(records - linked)}"
    assert linked <= records, f"benchmarks/README.md links records that are not there: {sorted(linked - records)}"


def test_index_names_every_script_and_only_scripts_that_exist():
    scripts = {str(p.relative_to(BENCHMARKS)) for p in BENCHMARKS.rglob("*") if p.suffix in (".py", ".sh")
               and "__pycache__" not in p.parts}
    named = set(re.findall(r"`(?:benchmarks/)?([\w/]+\.(?:py|sh))\b", INDEX.replace(REMOVED, "")))
    named |= {name for name in re.findall(r"\b([\w/]+\.(?:py|sh))\b", INDEX.replace(REMOVED, "")) if "/" not in name
              and name in {Path(s).name for s in scripts if "/" not in s}}  # common.py, bench_models.py
    missing = {s for s in scripts if s not in named}
    assert not missing, f"name these scripts in benchmarks/README.md: {sorted(missing)}"
    ghosts = {n for n in named if "/" in n and not (BENCHMARKS / n).exists() and not n.startswith(("src/", "tests/"))}
    assert not ghosts, f"benchmarks/README.md names scripts that are not there: {sorted(ghosts)}"
