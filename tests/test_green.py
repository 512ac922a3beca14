"""messaging/green.py: psycopg waiting on gevent's hub. Run in a child process that gevent has monkey-patched, as
gunicorn's gevent worker is (this process is not, and must keep psycopg's own wait)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import psycopg.waiting

from messaging import green

CHILD = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()

    import json, socket, sys, time
    import gevent, psycopg, psycopg.waiting
    from psycopg import errors
    from messaging import green

    url = sys.argv[1]
    out = {"installed": green.install()}
    out["wait_is_green"] = psycopg.waiting.wait is green.wait

    # Queries in four greenlets at once: each waits on the hub, so four 0.4 s sleeps take ~0.4 s, not 1.6 s.
    def sleeper(n):
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute("SELECT %s::int FROM pg_sleep(0.4)", (n,)).fetchone()[0]
    started = time.monotonic()
    jobs = [gevent.spawn(sleeper, n) for n in range(4)]
    gevent.joinall(jobs, raise_error=True)
    out["sleepers"] = sorted(j.value for j in jobs)
    out["sleep_seconds"] = time.monotonic() - started

    # A result that takes many network reads, in text and binary, arrives whole.
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT n, repeat('x', 1000) FROM generate_series(1, 2000) n").fetchall()
        out["rows"] = [len(rows), sum(r[0] for r in rows), {len(r[1]) for r in rows} == {1000}]
        with conn.cursor(binary=True) as cur:
            big = cur.execute("SELECT array_agg(n) FROM generate_series(1, 100000) n").fetchone()[0]
        out["binary"] = [len(big), big[-1]]
        # A server error is raised as psycopg raises it, and the connection goes on.
        try:
            conn.execute("SELECT 1/0")
            out["error"] = None
        except errors.DivisionByZero as exc:
            out["error"] = type(exc).__name__
        out["after_error"] = conn.execute("SELECT 7").fetchone()[0]

    # A deadline is kept: waiting to read a socket nobody writes to ends in psycopg's wait timeout.
    left, right = socket.socketpair()
    def never_readable():
        yield psycopg.waiting.Wait.R
        raise AssertionError("woken without data")
    started = time.monotonic()
    try:
        green.wait(never_readable(), left.fileno(), timeout=0.3)
        out["timeout"] = None
    except errors.OperationalError as exc:
        out["timeout"] = [type(exc).__name__, round(time.monotonic() - started, 1)]
    print(json.dumps(out))
    """
)


def test_psycopg_waits_on_the_gevent_hub_in_a_patched_process(pg_url: str) -> None:
    url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    done = subprocess.run([sys.executable, "-c", CHILD, url], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["installed"] and out["wait_is_green"]
    assert out["sleepers"] == [0, 1, 2, 3]
    assert out["sleep_seconds"] < 1.2, f"the greenlets did not wait together: {out['sleep_seconds']:.2f} s"
    assert out["rows"] == [2000, 2001000, True]
    assert out["binary"] == [100000, 100000]
    assert out["error"] == "DivisionByZero" and out["after_error"] == 7
    assert out["timeout"] == ["_WaitTimeout", 0.3]


def test_an_unpatched_process_keeps_psycopgs_own_wait() -> None:
    before = psycopg.waiting.wait
    assert green.install() is False
    assert psycopg.waiting.wait is before and before is not green.wait
