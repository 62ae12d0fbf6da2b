"""Stage 2, export: torch.export capture strategies (`capture`), the export stage that writes a `.pt2`
(`program`), and the checks export itself runs on what it captured (`specialization`, `shape_branches`).

May import: `target`, `pytrees`, `shapes`, `artifact`.
"""
