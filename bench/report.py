"""The summary table (plain text for the terminal, Markdown for the docs) and the
results file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.suites import Row

HEADER = ["workload", "case", "engine", "metric", "median", "range (min-max)", "n", "ratio"]


def number(value: Any) -> str:
    """A readable number: 3 significant figures, no exponent, thousands separated."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    v = float(value)
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _ratio(row: Row) -> str:
    if row.ratio is None or not row.ratio.get("n"):
        return ""
    r = row.ratio
    spread = f" [{number(r['min'])}-{number(r['max'])}]" if r["n"] > 1 else ""
    return f"{row.ratio_label} {number(r['median'])}{spread}"


def cells(row: Row) -> list[str]:
    s = row.stats
    if row.metric in ("skipped", "failed"):
        return [
            row.workload,
            row.case,
            row.engine,
            row.metric,
            "",
            "",
            "0",
            row.ratio_label,
        ]
    # " to " when a value is negative (W4's early sleeps): "-990--979" reads badly.
    dash = " to " if s.get("min", 0) < 0 else "-"
    spread = f"{number(s['min'])}{dash}{number(s['max'])}" if s.get("n", 0) > 1 else ""
    unit = f" {row.unit}" if row.unit else ""
    return [
        row.workload,
        row.case,
        row.engine,
        row.metric,
        number(s["median"]) + unit,
        spread,
        str(s.get("n", 0)),
        _ratio(row),
    ]


def text_table(header: list[str], body: list[list[str]]) -> str:
    """Columns aligned with spaces, a dashed line under the header."""
    table = [header, *body]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rows_text(rows: list[Row]) -> str:
    return text_table(HEADER, [cells(r) for r in rows])


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    def line(items: list[str]) -> str:
        return "| " + " | ".join(i.replace("|", "\\|") for i in items) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(b) for b in body)])


def markdown_rows(rows: list[Row]) -> str:
    return markdown_table(HEADER, [cells(r) for r in rows])


TARGETS_HEADER = ["target", "measured", "verdict", "note"]


def targets_table(targets: list[dict[str, Any]]) -> list[list[str]]:
    verdict = {True: "met", False: "MISSED", None: "not measured"}
    return [[t["target"], t["measured"], verdict[t["met"]], t.get("note", "")] for t in targets]


def write_json(results: dict[str, Any], out_dir: Path, stamp: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return path
