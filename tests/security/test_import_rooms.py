"""app.notify uses app.security (consent); app.security must not import app.notify back."""

from __future__ import annotations

import ast
from pathlib import Path

SECURITY = Path(__file__).parents[2] / "app" / "security"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_security_never_imports_notify():
    offenders = {
        path.name
        for path in SECURITY.glob("*.py")
        if any(
            name == "app.notify" or name.startswith("app.notify.")
            for name in imported_modules(path)
        )
    }
    assert offenders == set()
