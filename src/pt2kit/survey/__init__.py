"""Survey: run chosen stages over many models (`targets` collects them, `run` runs them, `report` holds the
rows) and print one coverage table.

May import: every package below it (`benchmark`, `verify`, `compile`, `export`, `diagnose`, ...); not its peers
at the top (`serve`, `tune`, ...), and the base (`errors`, `progress`).
"""
