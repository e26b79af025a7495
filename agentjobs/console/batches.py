"""The Message Batches lane: requests waiting per group, open batches, its counters
(``lanes/records.py``'s overview, as ``agentjobs batches list`` shows it)."""

from __future__ import annotations

import time

from agentjobs.console.markup import age, h, page, pairs, table, usd, when
from agentjobs.console.web import Request, Response
from agentjobs.lanes import records


def batches_page(request: Request) -> Response:
    over = records.overview()
    now = time.time()
    waiting = table(
        ["group", "requests waiting"],
        sorted(over["waiting"].items()),
        empty="no request waiting",
    )
    open_rows = [
        [
            b.get("id") or "(not created yet)",
            b["local"],
            b["state"],
            b["group"],
            len(b["cids"]),
            when(b["at"]),
            age(b["at"], now),
        ]
        for b in over["open"]
    ]
    st = over["stats"]
    counters = pairs(
        [
            ("batches created", f"{st.get('batches', 0):.0f}"),
            ("succeeded", f"{st.get('succeeded', 0):.0f}"),
            ("errored", f"{st.get('errored', 0):.0f}"),
            ("expired", f"{st.get('expired', 0):.0f}"),
            ("dead-lettered", f"{st.get('dead_lettered', 0):.0f}"),
            ("saved by the batch price", usd(st.get("saved_usd", 0.0))),
        ]
    )
    body = h(
        '<p>Requests sent with lane="batch" wait here until their group has enough or the '
        "oldest has waited long enough; answers complete each task's AsyncResult.</p>"
        "<h2>Waiting</h2><p>{} in all, the oldest {}s old</p>{}"
        "<h2>Open batches</h2>{}<h2>Counters</h2>{}",
        over["waiting_total"],
        f"{over['oldest_age_s']:.0f}",
        waiting,
        table(
            ["batch id", "local id", "state", "group", "requests", "opened (UTC)", "age"],
            open_rows,
            empty="no open batch",
        ),
        counters,
    )
    return Response(body=page(request, "Batches", body, section="/batches"))
