"""The survey's results: one `StageResult` per stage, a `SurveyRow` per entry and shape variant, and the
`SurveyReport` with its coverage table and JSON (the schema in docs/survey.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pt2kit.tables import render_table


class Status(str, Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # an earlier stage failed
    NOT_RUN = "-"  # not asked for

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StageResult:
    """One stage of one row: its status, time, and for a failure the blocker kind and the reason."""

    stage: str
    status: Status
    seconds: float = 0.0
    blocker: str | None = None
    message: str = ""

    def cell(self) -> str:
        if self.status is Status.OK:
            return f"ok {self.seconds:.1f}s"
        if self.status is Status.FAILED:
            return f"FAIL {self.blocker or ''}".strip()
        return str(self.status)

    def to_json(self) -> dict:
        return {"status": self.status.value, "seconds": round(self.seconds, 3), "blocker": self.blocker, "message": self.message}


@dataclass(frozen=True)
class SurveyRow:
    """One entry at one shape variant."""

    name: str
    target: str
    shapes: str
    dynamic: str
    stages: tuple[StageResult, ...]
    seconds: float
    pytree_types: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(s.status in (Status.OK, Status.NOT_RUN) for s in self.stages)

    @property
    def blocker(self) -> str | None:
        return next((s.blocker for s in self.stages if s.status is Status.FAILED), None)

    def stage(self, name: str) -> StageResult:
        return next(s for s in self.stages if s.stage == name)

    def to_json(self) -> dict:
        return {
            "name": self.name, "target": self.target, "shapes": self.shapes, "dynamic": self.dynamic, "ok": self.ok,
            "blocker": self.blocker, "seconds": round(self.seconds, 3), "stages": {s.stage: s.to_json() for s in self.stages},
            "pytree_types": list(self.pytree_types), "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict) -> "SurveyRow":
        stages = tuple(StageResult(k, Status(v["status"]), v["seconds"], v["blocker"], v["message"]) for k, v in data["stages"].items())
        return cls(data["name"], data["target"], data["shapes"], data["dynamic"], stages, data["seconds"],
                   tuple(data.get("pytree_types", ())), tuple(data.get("notes", ())))


@dataclass(frozen=True)
class SurveyReport:
    """Every row of a survey, with the versions and device it ran on."""

    rows: tuple[SurveyRow, ...]
    stages: tuple[str, ...]
    device: str
    torch_version: str
    created: str
    seconds: float
    interrupted: bool = False  # stopped early (Ctrl-C, SIGTERM): `rows` holds the rows done
    planned: int = 0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows) and not self.interrupted

    def counts(self) -> dict[str, int]:
        """Per stage, how many rows passed it; plus `rows` and `ok` (rows that passed every stage)."""
        counts = {"rows": len(self.rows), "ok": sum(r.ok for r in self.rows)}
        for stage in self.stages:
            counts[stage] = sum(r.stage(stage).status is Status.OK for r in self.rows)
        return counts

    def __str__(self) -> str:
        head = ["target", "shapes", *self.stages, "time", "note"]
        body = [[r.name, r.shapes, *(r.stage(s).cell() for s in self.stages), f"{r.seconds:.1f}s", _note(r)] for r in self.rows]
        lines = [render_table(head, body)]
        counts = self.counts()
        lines.append("")
        lines.append(f"{counts['ok']}/{counts['rows']} rows passed every stage; "
                     + ", ".join(f"{s} {counts[s]}/{counts['rows']}" for s in self.stages)
                     + f"  (torch {self.torch_version}, {self.device}, {self.seconds:.0f}s)")
        if self.interrupted:
            lines.append(f"interrupted after {len(self.rows)} of {self.planned} rows")
        failures = [r for r in self.rows if not r.ok]
        if failures:
            lines.append("failures:")
            for r in failures:
                stage = next(s for s in r.stages if s.status is Status.FAILED)
                lines.append(f"  {r.name} [{r.shapes}] {stage.stage}: {stage.blocker}: {stage.message}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "stages": list(self.stages), "device": self.device, "torch": self.torch_version,
            "created": self.created, "seconds": round(self.seconds, 3), "interrupted": self.interrupted,
            "planned": self.planned, "counts": self.counts(),
            "rows": [r.to_json() for r in self.rows],
        }


def _note(row: SurveyRow) -> str:
    parts = [f"pytree: {', '.join(t.rpartition('.')[2] for t in row.pytree_types)}"] if row.pytree_types else []
    return "; ".join(parts + list(row.notes))


__all__ = ["StageResult", "Status", "SurveyReport", "SurveyRow"]
