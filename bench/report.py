"""What every benchmark shares: the machine line and its section of docs/benchmarks.md.

Each benchmark owns the text between ``<!-- bench:NAME:start -->`` and
``<!-- bench:NAME:end -->``; rerunning it replaces that section and nothing else.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """``2 CPUs (`nproc`), <model>; Python 3.11.7``: the line every figure is recorded with."""
    return f"{os.cpu_count()} CPUs (`nproc`), {cpu_model()}; Python {platform.python_version()}"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def write_section(section: str, start: str, end: str, docs: Path = DOCS) -> None:
    """Put ``section`` (which begins with ``start`` and ends with ``end``) in ``docs``,
    replacing the previous one, or appended when there is none."""
    text = docs.read_text(encoding="utf-8") if docs.exists() else "# Benchmarks\n"
    if start in text and end in text:
        pattern = re.escape(start) + ".*?" + re.escape(end)
        text = re.sub(pattern, lambda _: section, text, count=1, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(text, encoding="utf-8")
