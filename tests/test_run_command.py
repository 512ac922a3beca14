"""`make run`'s runner as a real process (migrates and seeds SQLite, serves HTTP, runs its in-process worker,
stops cleanly on SIGTERM), and the `flask seed` command it shares the demo data set with."""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# The embedded default: no Redis (the in-process broker), the development JWT secret, loopback only.
UNSET = {"REDIS_URL", "JWT_PUBLIC_KEY", "JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE", "APP_ENV", "HOST"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
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
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.db'}", PORT=str(port), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "messaging.embedded"],
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

        match = output.wait_for(r"^Demo admin token .*: (\S+)$", timeout=10)
        assert match, output.text
        status, body = get(f"{base}/v1/me", token=match.group(1))
        assert status == 200, body
        assert json.loads(body)["userId"] == "demo-admin"
        assert "demo data added" in output.text or "demo data already present" in output.text

        assert output.wait_for(r"^worker ready", timeout=15), f"the in-process worker never came up:\n{output.text}"

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
    from messaging.db import session_scope
    from messaging.models import Offer, Property, Trip, User

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
