"""Survey: run chosen stages over many models (`targets` collects them, `run` runs them, `report` holds the
rows) and print one coverage table.

May import: `verify`, `compile`, `export`, `diagnose`, `shapes`, `artifact`, `target`, and the base
(`errors`, `progress`, `tables`); not its peers at the top (`serve`, `tune`, `migrate`, `partial`).
"""
