"""The import contracts in setup.cfg hold: dependencies point down, drivers are independent, no cycles.

`make test` runs `lint-imports` before pytest; this test runs the same check so that a plain
`pytest` catches an upward import or a new cycle too.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_architecture_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _imports_inside_functions(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno}", node.module or ""))
                elif isinstance(node, ast.Import):
                    found += [(f"{path.relative_to(ROOT)}:{node.lineno}", alias.name) for alias in node.names]
    return found


def test_architecture_services_follow_through_and_wiring_import_at_the_top() -> None:
    # Imports inside functions hide cycles. Here there are none, except the job queue's lazy rq and
    # redis (a measured start-up cost, see ivr/jobqueue.py).
    paths = [
        *ROOT.glob("ivr/services/*.py"), *ROOT.glob("ivr/followthrough/*.py"),
        *(ROOT / "ivr" / name for name in ("wiring.py", "ports.py", "jobqueue.py")),
        *(ROOT / "ivr" / "infra" / name for name in ("notify.py", "reply_calls.py", "twilio_rest.py")),
        ROOT / "web" / "__init__.py", ROOT / "web" / "extensions.py",
    ]
    inside = [
        (where, module) for path in sorted(paths) for where, module in _imports_inside_functions(path)
        if not (path.name == "jobqueue.py" and module.split(".")[0] in ("rq", "redis"))
    ]
    assert inside == []
