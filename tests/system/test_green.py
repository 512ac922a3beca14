"""Under gevent, psycopg waits on gevent's hub by itself (messaging/green.py says why nothing is installed for it).
Run in a child process that gevent has monkey-patched before anything imports psycopg, as gunicorn's gevent worker
is (this process is not)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from messaging import green

CHILD = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()

    import json, sys, time
    import gevent, psycopg
    from psycopg import errors
    from messaging import green

    url = sys.argv[1]
    out = {"patched": green.gevent_patched()}

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
    print(json.dumps(out))
    """
)


def test_psycopg_waits_on_the_gevent_hub_in_a_patched_process(pg_url: str) -> None:
    url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    done = subprocess.run([sys.executable, "-c", CHILD, url], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["patched"] is True
    assert out["sleepers"] == [0, 1, 2, 3]
    assert out["sleep_seconds"] < 1.2, f"the greenlets did not wait together: {out['sleep_seconds']:.2f} s"
    assert out["rows"] == [2000, 2001000, True]
    assert out["binary"] == [100000, 100000]
    assert out["error"] == "DivisionByZero" and out["after_error"] == 7


def test_an_unpatched_process_is_told_apart() -> None:
    assert green.gevent_patched() is False
