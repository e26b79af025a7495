"""The ops console in a real headless browser (Debian's Chromium, driven by Playwright)
against a live stack: the private Redis, an in-process worker and the simulator.

Dead letters are made for real (the simulator's spend cap refuses a call; the group's
pause dead-letters the next), lifted and replayed from the pages; an agent session
waits for approval and is approved from its page. Set AGENTJOBS_CONSOLE_SCREENSHOTS=DIR
(docs/img) to write a screenshot of each page. Skipped when Chromium is missing, except
in CI (CI=true), which must run it.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from click.testing import CliRunner

import agentjobs.agents.tasks  # noqa: F401  (registers the loop's tasks on the app)
from agentjobs import store
from agentjobs.agents.agent import Agent
from agentjobs.agents.tool import tool
from agentjobs.cli import main
from agentjobs.console.app import Console
from agentjobs.console.server import check_address, make
from agentjobs.contrib.pytest_plugin import all_queues, in_process_worker, purge
from agentjobs.contrib.testing import free_port, http_get, spawn, terminate, wait_for
from agentjobs.errors import ConfigurationError, DeadLetteredError
from agentjobs.lanes import records
from agentjobs.limiter import pause
from agentjobs.messages.result import ClaudeResult
from agentjobs.ops import metrics
from agentjobs.reliability import deadletter
from agentjobs.spend import cost
from agentjobs.worker.tasks import complete

CHROMIUM = "/usr/bin/chromium"
QUEUES = (*all_queues(), "agentjobs.tools")
SHOTS = os.environ.get("AGENTJOBS_CONSOLE_SCREENSHOTS")

pw_sync = pytest.importorskip("playwright.sync_api")


@tool(requires_approval=True)
def console_refund(amount: int) -> str:
    """Refund an amount to the customer."""
    return f"refunded {amount}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (each test opens its own context)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} missing: CI must run the browser tests (scripts/services.sh)")
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    with pw_sync.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


def serve(console: Console, users: dict[str, str]) -> Iterator[str]:
    server = make("127.0.0.1", 0, console, users)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def console_url(agentjobs_redis: Any) -> Iterator[str]:
    """``agentjobs console``'s server on a free loopback port (no auth: loopback)."""
    yield from serve(Console(), {})


@pytest.fixture(scope="module")
def live_worker(agentjobs_redis: Any, agentjobs_sim_server: Any) -> Iterator[Any]:
    """One in-process worker for the module: the claude.* queues and agentjobs.tools."""
    purge(QUEUES)
    with in_process_worker(QUEUES, concurrency=8) as worker:
        yield worker
    purge(QUEUES)


@pytest.fixture
def stack(live_worker: Any, state_redis: Any, fresh_sim: Any) -> Any:
    """The worker with an empty state store and a reset simulator."""
    return fresh_sim


@pytest.fixture
def page(browser: Any, console_url: str) -> Iterator[Any]:
    context = browser.new_context(base_url=console_url, viewport={"width": 1280, "height": 900})
    p = context.new_page()
    yield p
    context.close()


def shot(page: Any, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"), full_page=True)


def dead_letter_of(res: Any) -> str:
    with pytest.raises(DeadLetteredError) as info:
        res.get(timeout=30)
    return str(info.value).split("dead-lettered as ")[1].split()[0]


def kept_out(page: Any, url: str) -> bool:
    try:
        response = page.goto(url)
    except pw_sync.Error as exc:
        return "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
    return bool(response.status == 401 and "Dead letters" not in page.content())


def flash(page: Any, text: str) -> str:
    """The message the last action left, once it says ``text`` (the page before it may
    still show an earlier one while the browser follows the redirect)."""
    status = page.get_by_role("status")
    pw_sync.expect(status).to_contain_text(text)
    return str(status.inner_text())


def test_dead_letters_lifted_replayed_and_purged_from_the_pages(stack: Any, page: Any) -> None:
    # The account's spend limit: the first Sonnet call is refused and pauses the group;
    # the next one is dead-lettered without a call.
    capped = complete.delay(prompt="[[sim:error=spend]] hi", model="sonnet")
    capped_dl = dead_letter_of(capped)
    text = "Summarise <b>bold</b> & <script>alert(1)</script> please"
    key = f"k-{uuid.uuid4()}"
    waiting = complete.delay(prompt=text, model="sonnet", idempotency_key=key)
    waiting_dl = dead_letter_of(waiting)
    assert pause.spend_paused("sonnet")

    page.goto("/limiter")
    sonnet = page.locator("section#sonnet")
    assert "PAUSED: spend_limit" in sonnet.inner_text()
    sonnet.locator("form[action='/limiter/resume'] button").click()
    flash(page, "sonnet: lifted spend_limit")
    assert pause.spend_paused("sonnet") is None
    assert "PAUSED" not in page.locator("section#sonnet").inner_text()

    page.goto("/deadletters")
    rows = page.locator("tbody tr")
    assert rows.count() == 2
    assert "SpendLimitError" in page.locator("tbody").inner_text()
    shot(page, "deadletters")

    page.get_by_role("link", name=waiting_dl).click()
    request_json = page.locator("pre").inner_text()
    assert text in request_json  # user text shown as text...
    assert page.locator("main script, pre b").count() == 0  # ...never as markup
    shot(page, "deadletter")
    page.locator("form[action='/deadletters/replay'] button").first.click()
    done = flash(page, "as task")
    task_id = re.search(rf"{waiting_dl} as task (\S+)", done)
    assert task_id, done
    result = complete.AsyncResult(task_id.group(1)).get(timeout=30)
    assert result["text"] and result["idempotency_key"] == key
    wait_for(lambda: deadletter.get(waiting_dl) is None, timeout=20)
    page.reload()
    assert waiting_dl not in page.locator("tbody").inner_text()
    assert page.locator("tbody tr").count() == 1

    # Purge all needs the box ticked; then the list is empty.
    page.get_by_role("button", name="purge all").click()
    assert "tick 'sure'" in page.get_by_role("alert").inner_text()
    assert deadletter.get(capped_dl) is not None
    page.get_by_label("sure").check()
    page.get_by_role("button", name="purge all").click()
    flash(page, "purged 1; 0 remain")
    assert deadletter.count() == 0 and "no dead letters" in page.locator("main").inner_text()


def test_bulk_actions_act_on_what_the_filters_show(stack: Any, page: Any) -> None:
    missing = dead_letter_of(complete.delay(prompt="[[sim:error=404]] no such model"))
    bad = dead_letter_of(complete.delay(prompt="[[sim:error=400]] a bad one"))
    page.goto("/deadletters?error=NotFoundError")
    assert page.locator("tbody tr").count() == 1
    page.get_by_role("button", name="replay all matching").click()
    done = flash(page, f"replayed 1: {missing} as task")
    task_id = done.split(" as task ")[1].split()[0]
    # the 404 again: dead-lettered again, under the same id, now replayed once
    assert dead_letter_of(complete.AsyncResult(task_id)) == missing
    assert deadletter.get(missing).replays == 1  # type: ignore[union-attr]
    page.goto("/deadletters?error=NotFoundError")
    page.get_by_label("sure").check()
    page.get_by_role("button", name="purge all matching").click()
    flash(page, "purged 1; 1 remain")
    # the 400, which the filter did not show, was neither replayed nor purged
    assert deadletter.get(bad) is not None and deadletter.get(missing) is None
    assert deadletter.get(bad).replays == 0  # type: ignore[union-attr]


def test_a_post_without_the_csrf_token_is_refused(stack: Any, page: Any) -> None:
    dl_id = dead_letter_of(complete.delay(prompt="[[sim:error=400]] refused"))
    page.goto(f"/deadletters/{dl_id}")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token and len(token) == 64
    # The browser's own cookie goes along (page.request shares the context's jar).
    for form in ({"id": dl_id}, {"id": dl_id, "csrf_token": "0" * 64}):
        refused = page.request.post("/deadletters/purge", form=form)
        assert refused.status == 403 and "CSRF" in refused.text()
    # A token with another browser's cookie is refused too.
    other = page.context.browser.new_context(base_url=page.url.split("/deadletters")[0])
    try:
        other.new_page().goto("/")
        resp = other.request.post("/deadletters/purge", form={"id": dl_id, "csrf_token": token})
        assert resp.status == 403
    finally:
        other.close()
    # GET never changes state.
    assert page.request.get(f"/deadletters/purge?id={dl_id}").status == 404
    assert deadletter.get(dl_id) is not None
    ok = page.request.post("/deadletters/purge", form={"id": dl_id, "csrf_token": token})
    assert ok.status == 200 and deadletter.get(dl_id) is None


def test_every_page_renders_against_a_live_stack(stack: Any, page: Any) -> None:
    for i in range(4):
        complete.delay(prompt=f"question {i}", tenant="acme").get(timeout=30)
    complete.delay(prompt="a longer one", model="sonnet", tenant="globex").get(timeout=30)
    dead_letter_of(complete.delay(prompt="[[sim:error=400]] a bad one"))

    page.goto("/")
    assert page.title() == "Overview - agentjobs console"
    charts = page.locator("svg.chart")
    assert charts.count() == 4
    # the window's bars: 4 + 1 tasks succeeded, cost drawn
    assert page.locator("svg[aria-label='tasks finished'] rect").count() >= 1
    assert page.locator("svg[aria-label='cost at list price'] rect").count() >= 1
    assert "claude.haiku" in page.locator("main table").first.inner_text()
    page.goto("/?hours=1")
    assert "last 1 h, 1-minute bins" in page.locator("main").inner_text()

    page.goto("/cost")
    main_text = page.locator("main").inner_text()
    assert "acme" in main_text and "globex" in main_text and "claude.sonnet" in main_text
    assert page.locator("svg[aria-label='cost per hour, last 24 h'] rect").count() >= 1

    # A batch-lane request waits (the group's batch is sent at 60 s, after this test).
    complete.delay(prompt="a deferrable summary", lane="batch")
    wait_for(lambda: records.overview()["waiting_total"] == 1, timeout=20)
    page.goto("/batches")
    assert "no open batch" in page.locator("main").inner_text()
    assert "1 in all" in page.locator("main").inner_text()
    assert page.locator("table").first.locator("tbody tr").inner_text().split() == ["haiku", "1"]
    shot(page, "batches")

    page.goto("/limiter")
    for group in ("haiku", "sonnet", "opus"):
        assert page.locator(f"section#{group} table").count() == 2
    assert "itpm" in page.locator("section#haiku").inner_text()
    opus = page.locator("section#opus")
    opus.locator("input[name=seconds]").fill("120")
    opus.get_by_role("button", name="pause").click()
    flash(page, "opus: paused for 120s")
    assert "PAUSED: operator" in page.locator("section#opus").inner_text()
    page.locator("section#opus").get_by_role("button", name="resume").click()
    flash(page, "opus: lifted operator")
    assert not pause.active("opus")

    page.goto("/no/such/page")
    assert "no page /no/such/page" in page.get_by_role("alert").inner_text()


def test_approve_from_the_page_resumes_the_session(stack: Any, page: Any) -> None:
    agent = Agent(
        "console_approve",
        model="haiku",
        system="[[sim:tool_rounds=1]]",
        tools=[console_refund],
        max_tokens=256,
    )
    session = agent.start("Refund me <i>now</i>.", tenant="acme")
    assert session.wait(timeout=30, until=("waiting_approval",))["status"] == "waiting_approval"

    page.goto("/sessions")
    assert page.locator("tbody tr").count() == 1
    assert "waiting_approval" in page.locator("tbody").inner_text()
    shot(page, "sessions")
    page.get_by_role("link", name=session.id).click()
    pw_sync.expect(page).to_have_url(re.compile(f"/sessions/{session.id}$"))
    assert "Refund me <i>now</i>." in page.locator("main").inner_text()
    assert page.locator("main i").count() == 0
    shot(page, "session")
    page.get_by_role("button", name="approve").click()
    flash(page, "approved")
    result = session.wait(timeout=30)
    assert result["status"] == "completed"
    (call,) = session.record()["tool_calls"]
    assert call["approval"]["decision"] == "approved" and call["output"]
    page.reload()
    assert "completed" in page.locator("table.pairs").inner_text()
    assert page.get_by_role("button", name="approve").count() == 0

    # Deny: the model gets the reason as the tool's error and answers without it.
    denied = agent.start("Refund me again.")
    assert denied.wait(timeout=30, until=("waiting_approval",))["status"] == "waiting_approval"
    page.goto(f"/sessions/{denied.id}")
    page.get_by_label("reason").fill("over the <limit>")
    page.get_by_role("button", name="deny").click()
    flash(page, "denied")
    assert denied.wait(timeout=30)["status"] == "completed"
    (call,) = denied.record()["tool_calls"]
    assert call["status"] == "denied" and call["approval"]["reason"] == "over the <limit>"
    page.reload()
    assert "denied by console: over the <limit>" in page.locator("main").inner_text()

    # A list cut short says so, and offers more; one that fits says nothing.
    page.goto("/sessions?limit=1")
    assert page.locator("tbody tr").count() == 1
    assert "the newest 1 are shown" in page.locator("main").inner_text()
    page.get_by_role("link", name="show up to 5").click()
    assert page.locator("tbody tr").count() == 2
    assert "the newest" not in page.locator("main").inner_text()


def test_off_loopback_it_needs_authentication(
    browser: Any, agentjobs_redis: Any, state_redis: Any
) -> None:
    with pytest.raises(ConfigurationError, match="needs authentication"):
        check_address("0.0.0.0", {})
    check_address("0.0.0.0", {"ops": "pw"})
    check_address("0.0.0.0", {}, no_auth=True)
    check_address("127.0.0.1", {})
    refused = CliRunner().invoke(main, ["console", "--address", "0.0.0.0", "--port", "0"])
    assert refused.exit_code == 1 and "needs authentication" in refused.output
    bad = CliRunner().invoke(main, ["console", "--basic-auth", "nopassword", "--port", "0"])
    assert bad.exit_code == 1 and "user:password" in bad.output

    # The command itself, serving with the users of AGENTJOBS_CONSOLE_BASIC_AUTH.
    port = free_port()
    env = {**os.environ, **agentjobs_redis.env, "AGENTJOBS_CONSOLE_BASIC_AUTH": "ops:s3cret"}
    argv = [sys.executable, "-m", "agentjobs", "console", "--address", "0.0.0.0"]
    proc = spawn([*argv, "--port", str(port)], env=env, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = ""
        while "agentjobs console on" not in line:  # after any warning the child prints
            line = proc.stderr.readline().decode()
            assert line, "agentjobs console exited"
        assert f":{port}/ (basic auth, 1 user(s))" in line
        assert http_get(f"http://127.0.0.1:{port}/limiter")[0] == 401
        status, body = http_get(f"http://127.0.0.1:{port}/limiter", auth="ops:s3cret")
        assert status == 200 and b"API key fingerprint" in body
    finally:
        terminate(proc, 10)

    for url in serve(Console(), {"ops": "s3cret"}):
        anonymous = browser.new_context()
        wrong = browser.new_context(http_credentials={"username": "ops", "password": "nope"})
        right = browser.new_context(http_credentials={"username": "ops", "password": "s3cret"})
        try:
            # The browser is kept out without the right password (Chromium shows the 401,
            # or gives up on credentials it was given: either way, no page)...
            for context in (anonymous, wrong):
                assert kept_out(context.new_page(), url + "/deadletters")
            # ...the server's answers themselves:
            challenge = anonymous.request.get(url + "/deadletters")
            assert challenge.status == 401 and "Basic" in challenge.headers["www-authenticate"]
            assert "Dead letters" not in challenge.text()
            basic = "Basic " + base64.b64encode(b"ops:nope").decode()
            assert anonymous.request.get(url, headers={"Authorization": basic}).status == 401
            post = anonymous.request.post(url + "/deadletters/purge", form={"all": "1"})
            assert post.status == 401
            ok = right.new_page()
            assert ok.goto(url + "/deadletters").status == 200
            assert ok.title() == "Dead letters - agentjobs console"
        finally:
            for c in (anonymous, wrong, right):
                c.close()


DJANGO_SITE = """
import os, sys
from wsgiref.simple_server import make_server

import django
from django.conf import settings

# The project's own Celery app, on a broker of its own (DB 7: no worker of the test
# consumes it), as a Django project's would be (CELERY_BROKER_URL).
from celery import Celery
import agentjobs
project_app = Celery("site", broker=sys.argv[2], backend=os.environ["AGENTJOBS_RESULT_BACKEND"])
agentjobs.install(project_app)

settings.configure(
    SECRET_KEY="console-test-not-secret",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
        "django.contrib.sessions", "django.contrib.messages", "agentjobs.console.django",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    TEMPLATES=[{
        "BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
        "OPTIONS": {"context_processors": [
            "django.template.context_processors.request",
            "django.contrib.auth.context_processors.auth",
            "django.contrib.messages.context_processors.messages",
        ]},
    }],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}},
    USE_TZ=True,
)
django.setup()

from django.contrib import admin
from django.core.management import call_command
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ops/", include("agentjobs.console.django.urls")),
]
call_command("migrate", verbosity=0)
from django.contrib.auth.models import User
User.objects.create_user("staff", password="pw-staff", is_staff=True)
User.objects.create_user("plain", password="pw-plain")

from django.core.wsgi import get_wsgi_application
server = make_server("127.0.0.1", 0, get_wsgi_application())
print(server.server_port, flush=True)
server.serve_forever()
"""


def project_broker(agentjobs_redis: Any) -> str:
    return f"{agentjobs_redis.url}/7"


@pytest.fixture(scope="module")
def django_site(agentjobs_redis: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Django project of its own (admin, auth, the console app under /ops/) in a
    subprocess: Django's settings are once per process."""
    pytest.importorskip("django")
    where = tmp_path_factory.mktemp("django_site")
    script = where / "site.py"
    script.write_text(DJANGO_SITE)
    env = {**os.environ, **agentjobs_redis.env}
    proc = spawn(
        [sys.executable, str(script), str(where / "db.sqlite3"), project_broker(agentjobs_redis)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().decode().strip()
        assert port.isdigit(), "the Django site did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        terminate(proc, 10)


def test_the_django_app_behind_the_admin_login(
    stack: Any, browser: Any, django_site: str, agentjobs_redis: Any
) -> None:
    dl_id = dead_letter_of(complete.delay(prompt="[[sim:error=400]] from Django"))
    context = browser.new_context(base_url=django_site)
    try:
        page = context.new_page()
        page.goto("/ops/deadletters")
        assert "/admin/login/" in page.url  # the admin's login, not the console
        for user, password in (("plain", "pw-plain"), ("staff", "pw-staff")):
            page.fill("input[name=username]", user)
            page.fill("input[name=password]", password)
            page.click("input[type=submit]")
            if user == "plain":  # signed in, but not staff: kept at the admin's login
                pw_sync.expect(page).to_have_title(re.compile(r"^Error: Log in"))
                assert "/admin/login/" in page.url
        pw_sync.expect(page).to_have_title("Dead letters - agentjobs console")
        assert dl_id in page.locator("tbody").inner_text()
        # the overview's queue depth is the project's broker's (2 waiting there)
        project = Celery("project", broker=project_broker(agentjobs_redis))
        try:
            for i in range(2):
                project.send_task("agentjobs.complete", kwargs={"prompt": i}, queue="claude.opus")
            page.goto("/ops/")
            opus = page.locator("main table").first.locator("tr", has_text="claude.opus")
            assert opus.locator("td").nth(1).inner_text() == "2"
        finally:
            with project.connection_for_write() as conn:
                conn.default_channel.queue_purge("claude.opus")
            project.close()
        page.goto("/ops/deadletters")
        assert page.get_by_role("link", name="cost").get_attribute("href") == "/ops/cost"
        refused = page.request.post("/ops/deadletters/purge", form={"id": dl_id})
        assert refused.status == 403 and deadletter.get(dl_id) is not None
        page.get_by_role("link", name=dl_id).click()
        pw_sync.expect(page).to_have_url(re.compile(f"/ops/deadletters/{dl_id}$"))
        page.get_by_role("button", name="purge", exact=True).click()
        flash(page, "purged 1; 0 remain")
        assert page.url.startswith(django_site + "/ops/deadletters?")
        assert deadletter.get(dl_id) is None
    finally:
        context.close()


#: The minutes ago (of the six hours the history covers) without traffic: a quiet hour.
QUIET = range(120, 180)


def record_history(hours: int, now: float, days: int, results: list[ClaudeResult]) -> None:
    """Hours of traffic before this minute, made of the test's own: the fields its real
    tasks wrote into the per-minute metrics (by the workers' signal handlers) are added
    again to each earlier minute, ``load(i)`` times, by ``metrics.Update.commit`` with
    its clock set to that minute, and its results as many times to that minute's day
    by ``cost.record(day=...)`` (and some hundred times to each day before). What the
    pages draw is then what that real code wrote; only the clock and the load curve (a
    busy and a quiet stretch) are made up."""
    this_minute = int(now // 60)
    r = store.state_redis()
    real: dict[str, int] = {}
    for m in range(this_minute - 4, this_minute + 1):  # the test's tasks took under 5 min
        for f, v in r.hgetall(metrics.minute_key(m)).items():
            real[f.decode()] = real.get(f.decode(), 0) + int(v)
    assert real, "the test's tasks wrote no per-minute metrics"

    def load(i: int) -> int:  # copies of the real minute i minutes ago: 1-3, none in QUIET
        return 0 if i in QUIET else 2 + round(math.sin(2 * math.pi * i / 150))

    def again(day: str, times: int) -> None:
        for _ in range(times):
            for res in results:
                cost.record(
                    model=res.model,
                    queue=res.queue,
                    tenant=res.tenant,
                    usage=res.usage,
                    cost=res.cost_usd,
                    day=day,
                )

    for i in range(5, hours * 60):
        at = (this_minute - i) * 60 + 30
        u = metrics.Update()
        for f, v in real.items():
            u.fields[f] += v * load(i)
        u.commit(now=at)
        again(cost.today(dt.datetime.fromtimestamp(at, dt.UTC)), load(i))  # the same calls
    for d, day in enumerate(cost.recent_days(days, dt.datetime.fromtimestamp(now, dt.UTC))):
        again(day, d and 100 * (1 + d % 3))  # earlier days: busier or quieter ones


def test_the_charts_cover_hours_of_traffic(stack: Any, page: Any, live_worker: Any) -> None:
    results = [
        ClaudeResult.model_validate(
            complete.delay(
                prompt=f"question {i}", model=("haiku", "sonnet")[i % 2], tenant=f"t{i % 3}"
            ).get(timeout=30)
        )
        for i in range(6)
    ]
    dead_letter_of(complete.delay(prompt="[[sim:error=400]] a bad one"))
    # the worker's registration, lost with the test's empty state store, comes back with
    # its next heartbeat (every WORKER_HEARTBEAT_S): the overview counts it live
    wait_for(lambda: metrics.workers_alive(["claude.haiku"])["claude.haiku"] == 1, timeout=20)
    now = time.time()
    record_history(6, now, 7, results)

    page.goto("/")
    assert "last 6 h, 6-minute bins" in page.locator("main").inner_text()
    tasks = page.locator("svg[aria-label='tasks finished']")
    # 60 bins of 6 minutes, each with traffic but the quiet hour's 10 (or 9, when the
    # page's minute is the next one and the bins straddle the hour's ends)
    bars = busy_bins(tasks, 360, "c|tasks|", "succeeded")
    assert 50 <= bars <= 51 and tasks.locator("rect").count() == bars
    start = float(tasks.get_attribute("data-start") or 0)
    assert 0 < start - (now - 6 * 3600) <= 120  # the window: the 360 minutes to this one
    first = tasks.locator("rect").first.locator("title").text_content() or ""
    assert first.startswith(dt.datetime.fromtimestamp(start, dt.UTC).strftime("%H:%M "))
    workers = page.locator("main table").first.locator("tr", has_text="claude.haiku")
    assert workers.locator("td").last.inner_text() == "1"
    shot(page, "overview")

    page.goto("/?hours=24")
    assert "last 24 h, 24-minute bins" in page.locator("main").inner_text()
    # 24-minute bins: the 2 hours before the quiet one fill 5 or 6, the 3 after it 8 or 9
    tasks = page.locator("svg[aria-label='tasks finished']")
    bars = busy_bins(tasks, 1440, "c|tasks|", "succeeded")
    assert 13 <= bars <= 15 and tasks.locator("rect").count() == bars

    page.goto("/cost")
    assert page.locator("svg[aria-label='cost per UTC day, last 7 days'] rect").count() == 7
    # hours of 60 minutes ending this minute: 2 or 3 before the quiet one, 3 or 4 after
    hourly = page.locator("svg[aria-label='cost per hour, last 24 h']")
    bars = busy_bins(hourly, 1440, "c|cost_usd|")
    assert 5 <= bars <= 7 and hourly.locator("rect").count() == bars
    assert "t0" in page.locator("main").inner_text()
    shot(page, "cost")

    page.goto("/limiter")
    waits = page.locator("svg[aria-label='haiku: limiter wait']")
    bars = busy_bins(waits, 360, "s|limiter_wait_seconds|claude.haiku")
    assert 50 <= bars <= 51 and waits.locator("rect").count() == bars
    shot(page, "limiter")


def busy_bins(svg: Any, minutes: int, prefix: str, contains: str = "") -> int:
    """The bins of a chart of ``minutes`` (its data-start and data-bin) in which some
    minute's hash has a non-zero field starting with ``prefix`` (and containing
    ``contains``): the bars the chart should draw, counted from Redis, not the page."""
    start, bin_s = float(svg.get_attribute("data-start")), float(svg.get_attribute("data-bin"))
    per_bin, first = int(bin_s // 60), int(start // 60)
    r = store.state_redis()
    busy = 0
    for b in range(minutes // per_bin):
        for m in range(first + b * per_bin, first + (b + 1) * per_bin):
            fields = r.hgetall(metrics.minute_key(m))
            if any(
                f.decode().startswith(prefix) and contains in f.decode() and int(v) > 0
                for f, v in fields.items()
            ):
                busy += 1
                break
    return busy


def test_bad_ids_and_parameters_are_pages_not_tracebacks(stack: Any, page: Any) -> None:
    for url, status, says in (
        ("/?hours=nan", 400, "hours must be a number from 0.25 to 168"),
        ("/?hours=abc", 400, "hours must be"),
        ("/?hours=0", 400, "hours must be"),
        ("/limiter?hours=inf", 400, "hours must be"),
        ("/cost?days=-5", 400, "days must be a whole number from 1 to 366"),
        ("/cost?days=%C2%B2", 400, "days must be"),
        ("/cost?days=99999999999999999999", 400, "days must be"),
        ("/sessions?status=bogus", 400, "status must be one of running"),
        ("/sessions?limit=0", 400, "limit must be a whole number from 1 to 5000"),
        ("/sessions?limit=-3", 400, "limit must be"),
        ("/sessions?limit=9999", 400, "limit must be"),
        ("/sessions?limit=%C2%B2", 400, "limit must be"),
        ("/deadletters/dl_nosuch", 404, "no dead letter dl_nosuch"),
        ("/sessions/nosuch", 404, "no session nosuch"),
        ("/sessions/a%2Fb", 404, "no page /sessions/a/b"),
        ("/deadletters/%ff", 404, "no page /deadletters/"),
        ("/sessions/nosuch/approve", 405, "GET not allowed here"),
    ):
        response = page.goto(url)
        assert response.status == status, url
        assert says in page.locator("main").inner_text(), url
        assert "Traceback" not in page.content()
    # the empty state: charts say there is nothing, rather than draw a flat line
    page.goto("/")
    assert page.locator("svg.chart .nodata").count() == 4


def test_markup_escapes_what_it_is_given_and_the_token_is_bound_to_its_cookie(
    monkeypatch: pytest.MonkeyPatch, state_redis: Any
) -> None:
    from agentjobs.console.csrf import Csrf
    from agentjobs.console.markup import Safe, h, table
    from agentjobs.console.server import wsgi_from_settings
    from agentjobs.settings import reset_settings

    assert h("<p>{}</p>", '<a href="x">&') == "<p>&lt;a href=&quot;x&quot;&gt;&amp;</p>"
    assert h("<p>{}</p>", Safe("<b>built</b>")) == "<p><b>built</b></p>"
    assert "<script>" not in table(["<script>"], [["<script>", 1234]])
    assert '<td class="num">1,234</td>' in table(["n"], [[1234]])
    one, two = Csrf(), Csrf()
    nonce = one.new_nonce()
    assert one.valid(nonce, one.token(nonce))
    assert not one.valid(one.new_nonce(), one.token(nonce))  # another cookie's token
    assert not two.valid(nonce, one.token(nonce))  # another secret (process)
    assert not one.valid(nonce, None) and not one.valid(None, one.token(nonce))
    # A WSGI server of one's own (gunicorn) gets the app only with users configured.
    monkeypatch.delenv("AGENTJOBS_CONSOLE_BASIC_AUTH", raising=False)
    reset_settings()
    with pytest.raises(ConfigurationError, match="AGENTJOBS_CONSOLE_BASIC_AUTH"):
        wsgi_from_settings()
    monkeypatch.setenv("AGENTJOBS_CONSOLE_BASIC_AUTH", "ops:pw")
    reset_settings()
    one_worker, another = wsgi_from_settings(), wsgi_from_settings()  # two gunicorn workers
    auth = "Basic " + base64.b64encode(b"ops:pw").decode()
    status, headers, body = wsgi_call(one_worker, "GET", "/limiter", auth)
    assert status.startswith("200")
    cookie = dict(headers)["Set-Cookie"].split(";")[0]
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', body).group(1)  # type: ignore[union-attr]
    form = f"group=nosuch&seconds=1&csrf_token={token}"
    status, _, _ = wsgi_call(another, "POST", "/limiter/pause", auth, cookie, form)
    assert status.startswith("303")  # the other process took the token (and refused the group)
    status, _, _ = wsgi_call(another, "POST", "/limiter/pause", auth, cookie, "group=opus")
    assert status.startswith("403")
    monkeypatch.undo()
    reset_settings()


def wsgi_call(
    app: Any, method: str, path: str, auth: str, cookie: str = "", form: str = ""
) -> tuple[str, list[tuple[str, str]], str]:
    """One request through a WSGI app, as a WSGI server would make it."""
    import io
    from wsgiref.util import setup_testing_defaults

    body = form.encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "HTTP_AUTHORIZATION": auth,
        "HTTP_COOKIE": cookie,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "wsgi.input": io.BytesIO(body),
    }
    setup_testing_defaults(environ)
    got: list[Any] = []
    chunks = app(environ, lambda status, headers: got.extend((status, headers)))
    return got[0], got[1], b"".join(chunks).decode()
