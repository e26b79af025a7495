"""The support desk of examples/agent_app with its database ready: the agent of the eval
suite's ``desk-*`` cases (``"agent": "support_desk:router"``).

The desk's tools read a SQLite database that must exist first: this module creates and
seeds it (in a temporary folder unless ``AGENT_APP_DB`` says where) when imported, by
``agentjobs eval`` before its worker starts, then by the worker (``-I support_desk``),
which inherits ``AGENT_APP_DB`` and finds it there.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "examples" / "agent_app"
if str(APP) not in sys.path:
    sys.path.insert(0, str(APP))
if not os.environ.get("AGENT_APP_DB"):
    folder = tempfile.mkdtemp(prefix="agentjobs-eval-desk-")
    os.environ["AGENT_APP_DB"] = str(Path(folder) / "desk.sqlite3")

import desk_db  # noqa: E402

desk_db.create()

from desk import router  # noqa: E402

__all__ = ["router"]
