"""An eval run's report: pass or fail, per-case figures beside the baseline's, why.

``Report.rows()`` feeds the terminal table (``agentjobs eval`` draws it), ``as_dict()``
its ``--json``, and ``write(path)`` a Markdown (``.md``) or HTML (``.html``) file with
two small inline-SVG bar charts, p95 latency and cost per run, baseline beside now.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentjobs.evals.baseline import Regression
from agentjobs.evals.runner import CaseResult

#: Bar colours: the baseline grey, now blue, now past the allowed growth red.
BASE, NOW, WORSE = "#9aa0a6", "#1a73e8", "#d93025"


@dataclass
class Report:
    results: Sequence[CaseResult]
    baseline: dict[str, Any] | None = None
    regressions: list[Regression] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    max_regression: float = 0.2

    @property
    def failed_expectations(self) -> dict[str, list[str]]:
        return {r.name: r.failures() for r in self.results if not r.passed}

    @property
    def passed(self) -> bool:
        return not self.regressions and not self.failed_expectations

    def _before(self, name: str) -> dict[str, Any]:
        return dict((self.baseline or {}).get("cases", {}).get(name) or {})

    def _worse(self, name: str) -> set[str]:
        return {g.figure for g in self.regressions if g.case == name}

    # -- data --------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "max_regression": self.max_regression,
            "cases": [
                {
                    "name": r.name,
                    "kind": r.case.kind,
                    "passed": r.passed and not self._worse(r.name),
                    "figures": r.figures(),
                    "baseline": self._before(r.name) or None,
                    "failures": r.failures(),
                }
                for r in self.results
            ],
            "regressions": [
                {
                    "case": g.case,
                    "figure": g.figure,
                    "baseline": g.baseline,
                    "now": g.now,
                    "change": None if g.change == float("inf") else round(g.change, 4),
                }
                for g in self.regressions
            ],
            "notes": list(self.notes),
        }

    HEADER = ("case", "runs", "p50 ms", "p95 ms", "base p95", "cost USD", "base cost",
              "tokens in/out", "steps", "result")  # fmt: skip

    def rows(self) -> list[list[str]]:
        """One row per case for the terminal table (HEADER's columns)."""
        out = []
        for r in self.results:
            f, b, worse = r.figures(), self._before(r.name), self._worse(r.name)
            verdict = "ok"
            if not r.passed:
                verdict = "FAIL expect"
            elif worse:
                verdict = "FAIL " + "+".join("p95" if w == "p95_s" else "cost" for w in worse)
            out.append(
                [
                    r.name,
                    str(f["runs"]),
                    f"{f['p50_s'] * 1000:.0f}",
                    f"{f['p95_s'] * 1000:.0f}",
                    f"{b['p95_s'] * 1000:.0f}" if b else "-",
                    f"{f['cost_usd']:.6f}",
                    f"{b['cost_usd']:.6f}" if b else "-",
                    f"{f['input_tokens']:.0f}/{f['output_tokens']:.0f}",
                    f"{f['steps']:g}",
                    verdict,
                ]
            )
        return out

    def reasons(self) -> list[str]:
        """Why the run failed, one line each: regressions, then failed expectations."""
        lines = [f"regression: {g.text()}" for g in self.regressions]
        for name, failures in self.failed_expectations.items():
            lines += [f"expectation: {name}: {f}" for f in failures]
        return lines

    # -- files -------------------------------------------------------------------------

    def markdown(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        lines = [
            f"# agentjobs eval: {verdict}",
            "",
            f"{len(self.results)} cases; a p95 or cost growing by more than "
            f"{self.max_regression:.0%} of its baseline fails the run.",
            "",
        ]
        if self.reasons():
            lines += ["## Failures", ""] + [f"- {line}" for line in self.reasons()] + [""]
        header = self.HEADER
        lines += ["## Cases", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        lines += ["", "## p95 latency (ms)", "", self.chart("p95_s", 1000.0)]
        lines += ["", "## Cost per run (USD)", "", self.chart("cost_usd", 1.0)]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        lines += ["", f"Bars: baseline grey, now blue (red when past {self.max_regression:.0%})."]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        import re

        # The Markdown's pieces as HTML: a page a browser opens without any renderer.
        body = []
        for block in self.markdown().split("\n\n"):
            if block.startswith("<svg"):
                body.append(block)
            elif block.startswith("# ") or block.startswith("## "):
                level = 1 if block.startswith("# ") else 2
                body.append(f"<h{level}>{html.escape(block.lstrip('# '))}</h{level}>")
            elif block.startswith("| "):
                rows = [r for r in block.splitlines() if not re.match(r"^\|[-:|]+\|$", r)]
                cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
                head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
                trs = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                    for row in cells[1:]
                )
                body.append(f"<table><tr>{head}</tr>{trs}</table>")
            elif block.startswith("- "):
                items = "".join(f"<li>{html.escape(x[2:])}</li>" for x in block.splitlines())
                body.append(f"<ul>{items}</ul>")
            else:
                body.append(f"<p>{html.escape(block)}</p>")
        style = (
            "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
            "text-align:right}td:first-child,th:first-child{text-align:left}"
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>agentjobs eval</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
        )

    def write(self, path: str | Path) -> None:
        p = Path(path)
        text = self.html() if p.suffix.lower() in (".html", ".htm") else self.markdown()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")

    def chart(self, figure: str, scale: float) -> str:
        """A horizontal bar chart, one pair of bars per case: baseline, now."""
        bar_h, gap, label_w, plot_w = 9, 8, 170, 330
        values = []
        for r in self.results:
            b = self._before(r.name).get(figure)
            now = float(r.figures()[figure]) * scale
            before = None if b is None else float(b) * scale
            values.append((r.name, before, now, figure in self._worse(r.name)))
        peak = max([v for _, b, n, _ in values for v in (b or 0.0, n)] + [1e-12])
        height = len(values) * (2 * bar_h + gap) + gap
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 90}" '
            f'height="{height}" font-family="sans-serif" font-size="11">'
        ]
        y = gap
        for name, before, now, worse in values:
            label = html.escape(name if len(name) <= 26 else name[:25] + "…")
            parts.append(f'<text x="0" y="{y + bar_h + 3}">{label}</text>')
            for value, colour in ((before, BASE), (now, WORSE if worse else NOW)):
                if value is not None:
                    w = max(1.0, value / peak * plot_w)
                    parts.append(
                        f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                        f'fill="{colour}"/><text x="{label_w + w + 4:.1f}" y="{y + bar_h - 1}">'
                        f"{_fmt(value)}</text>"
                    )
                y += bar_h
            y += gap
        parts.append("</svg>")
        return "".join(parts)


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"
