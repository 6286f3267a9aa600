#!/usr/bin/env python3
"""The project's two commands, needing nothing but Python 3.11 and pip.

    python3 dev.py up     install into .venv, migrate, load demo data, serve on :8000
    python3 dev.py test   install into .venv (with test extras) and run the test suite

Anything after the command is passed on (`python3 dev.py test -k routing`).
The virtual environment is reinstalled only when pyproject.toml changes.
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


def ensure_venv(extras: str) -> None:
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    target = f".[{extras}]" if extras else "."
    subprocess.check_call(
        [str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", target],
        cwd=ROOT,
    )
    STAMP.write_text(wanted)


def main() -> int:
    command, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("help", [])
    if command == "up":
        ensure_venv("test")
        return subprocess.call([str(PYTHON), "-m", "app", "up", *rest], cwd=ROOT)
    if command == "test":
        ensure_venv("test")
        return subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)
    print(__doc__)
    return 0 if command == "help" else 2


if __name__ == "__main__":
    sys.exit(main())
