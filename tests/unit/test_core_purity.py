"""streamer/core is pure: it imports numpy and the standard library only, never Kafka or Faust."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "streamer" / "core"
ALLOWED_THIRD_PARTY = {"numpy"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_imports_only_numpy_stdlib_and_itself():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for f in sorted(CORE.rglob("*.py")):
        bad = imported_roots(f) - stdlib - ALLOWED_THIRD_PARTY - {"streamer"}
        assert not bad, f"{f.relative_to(CORE)} imports {bad}"
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("streamer."):
                assert node.module.startswith("streamer.core"), f"{f.relative_to(CORE)} imports {node.module}"


def test_importing_core_loads_no_kafka_or_faust():
    code = ("import sys, importlib, pkgutil, streamer.core as c\n"
            "[importlib.import_module('streamer.core.' + m.name) for m in pkgutil.iter_modules(c.__path__)]\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('faust', 'aiokafka', 'mode', 'kafka', 'scipy')]\n"
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
