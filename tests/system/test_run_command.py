"""`make run`'s runner as a real process with no database or Redis settings: it starts its private PostgreSQL and
Redis, migrates and seeds, serves HTTP, runs its worker (a platform event becomes a concierge message), stops
cleanly on SIGTERM; and the `flask seed` command it shares the demo data set with."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from concierge import demo_data
from concierge.demo import run_demo
from concierge.notifications import EVENT_TYPES
from messaging.api.auth import mint_token
from messaging.config import DEV_JWT_SECRET

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
DEV_TOKENS = {"JWT_SECRET": DEV_JWT_SECRET, "JWT_ISSUER": None, "JWT_AUDIENCE": None}  # what the runner verifies
STOP_TIMEOUT = 10.0
# The embedded default: no database or Redis given, the development JWT secret, loopback only.
UNSET = {"DATABASE_URL", "REDIS_URL", "JWT_PUBLIC_KEY", "JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE", "APP_ENV", "HOST",
         "REDIS_KEY_PREFIX"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, token: str | None = None, body: Any = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, headers=headers, data=data)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Output:
    """The process's merged stdout and stderr, collected by a thread so the pipe never fills."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text, re.MULTILINE)
            if match:
                return match
            time.sleep(0.1)
        return None


@pytest.mark.slow
def test_embedded_runner_serves_works_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name not in UNSET}
    env.update(INSTANCE_DIR=str(tmp_path / "instance"), PORT=str(port), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "run"],  # what `make run` runs
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(proc)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _ = get(f"{base}/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert status == 200, f"/healthz never answered 200 (exit code {proc.poll()}):\n{output.text}"

        status, body = get(f"{base}/readyz")
        assert status == 200, body

        assert output.wait_for(r"^Ctrl-C stops\.$", timeout=40), f"no banner:\n{output.text}"
        # The banner comes last and together: the worker is up before it, and nothing is logged after it
        # (no line per request: LOG_ACCESS is off).
        banner = output.text[output.text.index("\nAPI: "):]
        assert "worker ready" in output.text and "worker ready" not in banner
        tokens = dict(re.findall(r"^  \w+ +(\S+) \(\w+\): (\S+)$", banner, re.MULTILINE))
        assert set(tokens) == {"demo-admin", "demo-traveler", "demo-host", "platform"}, banner
        for sub, token in tokens.items():
            status, body = get(f"{base}/v1/me", token=token)
            assert status == 200 and json.loads(body)["userId"] == sub, body
        assert "demo data added" in output.text or "demo data already present" in output.text
        assert "PostgreSQL: a private server" in output.text and "Redis: a private server" in output.text

        # The printed curl line, as printed: the platform books a trip for the demo traveler, and the worker
        # writes the concierge's confirmation.
        curl = re.search(r"curl -X POST (\S+) -H 'Authorization: Bearer (\S+)' \\\n.* -d '(.+)'$", banner,
                         re.MULTILINE)
        assert curl and curl.group(1) == f"{base}/v1/events" and curl.group(2) == tokens["platform"], banner
        service, tried = curl.group(2), json.loads(curl.group(3))
        status, body = get(f"{base}/v1/events", service, tried)
        assert status == 202, body

        def processed() -> dict[str, Any] | None:
            event = json.loads(get(f"{base}/v1/events/{tried['id']}", service)[1])
            return event if event["status"] in ("processed", "failed", "skipped") else None

        deadline = time.monotonic() + 30
        while (event := processed()) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert event is not None and event["status"] == "processed", (event, output.text[-3000:])
        traveler = mint_token(DEV_TOKENS, sub=demo_data.TRAVELER_ID, role="guest", ttl=dt.timedelta(hours=1))
        concierge = json.loads(get(f"{base}/v1/concierge", traveler)[1])
        messages = json.loads(get(f"{base}/v1/conversations/{concierge['id']}/messages", traveler)[1])["items"]
        written = {m["id"] for m in messages if m["senderType"] == "concierge"}
        assert {m["id"] for m in event["messages"]} & written, (event, messages)
        assert output.text.endswith(banner), "something was logged after the banner:\n" + output.text[-2000:]

        # make demo against it: one event of every type, each processed, and every question answered.
        said: list[str] = []
        assert run_demo(base, said.append, DEV_TOKENS) == 0, "\n".join(said)
        shown = "\n".join(said)
        for event_type in EVENT_TYPES:
            assert f"  {event_type} → " in shown, shown
        assert "(no answer yet)" not in shown and f"{base}/admin/transcripts" in shown, shown

        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_TIMEOUT:.0f} s after SIGTERM:\n{output.text}")
        assert code == 0, output.text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_flask_seed_adds_the_demo_data_once(app: Any, runner: Any) -> None:
    from sqlalchemy import func, select

    from concierge import demo_data
    from messaging.store.db import session_scope
    from messaging.store.models import Offer, Property, Trip, User

    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0, first.output
    assert "demo data added: users:demo-host, users:demo-traveler, properties:1001, offers:2001, trips:3001" in (
        first.output
    )
    second = runner.invoke(args=["seed"])
    assert second.exit_code == 0, second.output
    assert "demo data already present" in second.output

    with app.app_context(), session_scope() as session:
        counts = [session.scalar(select(func.count()).select_from(model)) for model in (User, Property, Offer, Trip)]
        trip = session.get(Trip, demo_data.TRIP_ID)
    assert counts == [2, 1, 1, 1]
    assert trip is not None and trip.offer_id == demo_data.OFFER_ID and trip.status == "Booked"
    assert trip.check_out > trip.check_in
