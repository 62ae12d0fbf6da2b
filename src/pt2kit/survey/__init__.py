"""Survey: run chosen stages over many models (`targets` collects them, `run` runs them) and print one
coverage table.

May import: every stage below it.
"""
