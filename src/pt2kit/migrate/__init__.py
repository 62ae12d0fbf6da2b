"""The migrate stage: a TorchScript archive (`.pt`) -> an `ExportedProgram` with pt2kit's manifest.

Owns: reading TorchScript archives without their Python source (`archive`), the conversion strategies
(torch's `TS2EPConverter`, the same after specializing sizes at the example shape, non-strict export of the
scripted module), the blockers of a failed conversion at the original file and line (`blockers`), the inputs
that take each side of a scripted `if` (`branches`) and the driver that converts, saves and verifies (`run`).

May import: `verify`, `export`, `diagnose` (the `Blocker` format), `shapes`, `capture`, `runtime`, `artifact`,
`target`, and the base (`errors`, `progress`). Nothing imports it but the CLI.

    >>> result = migrate_model("model.pt", "model.pt2", inputs=[parse_input("x=float32[4,16]")], verify=True)
    >>> print(result); result.ok
"""

from pt2kit.migrate.run import MigrateResult, migrate_model
from pt2kit.migrate.strategies import Strategy, StrategyAttempt
from pt2kit.migrate.targets import migrated_module, scripted_module

__all__ = ["MigrateResult", "Strategy", "StrategyAttempt", "migrate_model", "migrated_module", "scripted_module"]
