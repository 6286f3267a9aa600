#!/usr/bin/env python3
"""The project's two commands, needing nothing but Python 3.11 and pip.

    python3 dev.py up     install into .venv, migrate, load demo data, serve on :8000
    python3 dev.py test   install into .venv (with test extras) and run the test suite
    python3 dev.py lock   re-pin requirements*.lock after a change to pyproject.toml

Anything after the command is passed on (`python3 dev.py test -k routing`).
Dependencies come from requirements-dev.lock (pinned, hashed; the image uses
requirements.lock); the virtual environment is reinstalled only when pyproject.toml or the
lock changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".dev-installed"


LOCKS = {"requirements.lock": "", "requirements-dev.lock": "test"}


def ensure_venv() -> None:
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    lock = ROOT / "requirements-dev.lock"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + lock.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    pip = [str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.check_call([*pip, "--require-hashes", "--no-deps", "-r", str(lock)], cwd=ROOT)
    subprocess.check_call([*pip, "--no-deps", "-e", ".[test]"], cwd=ROOT)
    # A dependency added to pyproject.toml but not to the lock shows up here.
    if subprocess.call([str(PYTHON), "-m", "pip", "check"], cwd=ROOT) != 0:
        sys.exit("requirements-dev.lock is out of date with pyproject.toml: python3 dev.py lock")
    STAMP.write_text(wanted)


def lock() -> int:
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    subprocess.check_call([str(PYTHON), "-m", "pip", "install", "-q", "uv"], cwd=ROOT)
    for name, extra in LOCKS.items():
        extras = ["--extra", extra] if extra else []
        compile_ = [str(BIN / "uv"), "pip", "compile", "pyproject.toml", *extras, "-q"]
        flags = ["--python-version", "3.11", "--universal", "--generate-hashes", "-o", name]
        subprocess.check_call([*compile_, *flags], cwd=ROOT)
    STAMP.unlink(missing_ok=True)
    return 0


def main() -> int:
    command, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("help", [])
    if command == "up":
        ensure_venv()
        return subprocess.call([str(PYTHON), "-m", "app", "up", *rest], cwd=ROOT)
    if command == "test":
        ensure_venv()
        return subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)
    if command == "lock":
        return lock()
    print(__doc__)
    return 0 if command == "help" else 2


if __name__ == "__main__":
    sys.exit(main())
