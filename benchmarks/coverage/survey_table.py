"""Render `pt2kit survey --json` documents as Markdown tables (for benchmarks/*.md).

    python benchmarks/coverage/survey_table.py results/vision.json results/transformers.json
"""

from __future__ import annotations

import json
import sys


def table(report: dict) -> str:
    stages = report["stages"]
    lines = ["| target | shapes | " + " | ".join(stages) + " | time | blocker / note |",
             "| --- | --- | " + " | ".join("---" for _ in stages) + " | --- | --- |"]
    for row in report["rows"]:
        cells = []
        for stage in stages:
            s = row["stages"][stage]
            cells.append(f"ok {s['seconds']:.1f}s" if s["status"] == "ok" else ("**FAIL**" if s["status"] == "failed" else s["status"]))
        failed = next((s for s in row["stages"].values() if s["status"] == "failed"), None)
        note = f"`{failed['blocker']}`: {failed['message'][:160]}" if failed else ""
        if row["pytree_types"]:
            note = (note + "; " if note else "") + "pytree: " + ", ".join(t.rpartition(".")[2] for t in row["pytree_types"])
        lines.append(f"| {row['name']} | {row['shapes']} | " + " | ".join(cells) + f" | {row['seconds']:.1f}s | {note.replace('|', '/')} |")
    counts = report["counts"]
    summary = f"{counts['ok']}/{counts['rows']} rows passed every stage; " + ", ".join(f"{s} {counts[s]}/{counts['rows']}" for s in stages)
    if report.get("interrupted"):
        summary += f" (stopped by its time limit after {len(report['rows'])} of {report['planned']} rows)"
    return "\n".join(lines) + f"\n\n{summary} (torch {report['torch']}, {report['device']}, {report['seconds']:.0f}s, {report['created']})\n"


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path) as f:
            print(f"### {path.rsplit('/', 1)[-1]}\n\n{table(json.load(f))}")
