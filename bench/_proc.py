"""Shared by the wrk benchmarks: a server process on a port in 18600-18699 (or
BENCH_PORTS), its CPU time (with its worker processes), and a private PostgreSQL
database for one run."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(p) for p in task.read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (uvicorn workers)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / _TICKS
    return own + sum(cpu_seconds(child) for child in _children(pid))


def system_seconds(pid: int) -> float:
    """Kernel (system) CPU time of a process and its live descendants: the share of a
    request that callgrind's instruction counts never see (syscalls, socket and file I/O)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return int(fields[12]) / _TICKS + sum(system_seconds(child) for child in _children(pid))


def thread_cpu(pid: int) -> dict[int, float]:
    """User + system CPU time of each live thread of one process, by thread id."""
    found: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return found


def thread_switches(pid: int) -> dict[int, int]:
    """Context switches (voluntary and not) of each live thread of one process: under
    load, each is a GIL or lock hand-off between the event loop and the turns' threads."""
    found: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            status = (task / "status").read_text()
        except FileNotFoundError:
            continue
        found[int(task.name)] = sum(
            int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line
        )
    return found


def thread_names(pid: int) -> dict[int, str]:
    """Python's name of each thread of a process (py-spy's dump; threads Python did not
    start, e.g. a driver's, are missing)."""
    spy = Path(sys.executable).parent / "py-spy"
    names: dict[int, str] = {}
    # A non-blocking dump reads a running process's memory and fails now and then (a
    # stack changed under it); without names every turn thread would count as "other".
    for _ in range(5):
        dump = subprocess.run(
            [str(spy), "dump", "--nonblocking", "--pid", str(pid)], capture_output=True, text=True
        ).stdout
        for line in dump.splitlines():
            if line.startswith("Thread ") and '"' in line:
                tid, name = line.split()[1], line.split('"')[1]
                if tid.isdigit():
                    names[int(tid)] = name
        if names:
            return names
    return names


def thread_kind(pid: int, tid: int, name: str | None) -> str:
    """Which part of the server a thread's CPU belongs to: the event loop, the turns'
    worker threads, the background jobs, or other."""
    if tid == pid:
        return "loop"
    if name is None:
        return "other"
    if name.startswith("job:"):
        return "jobs"
    return "workers" if "worker" in name.lower() or name.startswith("turn") else "other"


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES.rsplit("/", 1)[0].replace("+psycopg", "") + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    import socket

    # BENCH_PORTS=18100-18199 keeps a run inside one engineer's range on a shared machine.
    low, high = (int(p) for p in os.environ.get("BENCH_PORTS", "18600-18699").split("-"))
    for port in range(low, high + 1):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"no free port in {low}-{high}")


@contextmanager
def serve(url: str, extra_env: dict[str, str], workers: int = 1) -> Iterator[tuple[str, int]]:
    """Yield (base URL, pid) of a server on `url`; stop it at the end."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PUBLIC_BASE_URL": base,
        "BENCH_ENDPOINTS": "true",
        "RATE_LIMIT_WEBHOOK": "1000000/minute",
        "RATE_LIMIT_DEFAULT": "1000000/minute",
        "RATE_LIMIT_PIN": "1000000/minute",
        "LOG_LEVEL": "WARNING",
        **extra_env,
    }
    # What `python -m app serve --workers N` runs, minus migrations and the access log.
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_default_app"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    command += ["--workers", str(workers)]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        wait_until_up(base, server)
        yield base, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def wait_until_up(base: str, server: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Until the server process answers /healthz; exit the benchmark if it dies or stalls."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server did not come up in {seconds:.0f} s")
