"""Time classic AGI start-up: from spawning `ivr-agi` to its first AGI command on stdout.

    .venv/bin/python benchmarks/bench_classic_agi.py            # 30 runs of each
    .venv/bin/python benchmarks/bench_classic_agi.py --runs 50

Asterisk starts the classic AGI program once per call and the caller hears nothing until
its first command (the welcome prompt's STREAM FILE), so this is dead air on every call.
`ivr-agi` sends that command before it imports SQLAlchemy and the rest of the call
flow's database layer, which it imports while the prompt plays.
Each run spawns `.venv/bin/ivr-agi` as Asterisk would (pipes, the `agi_*` greeting from
`tests.fakes.FakeAsteriskCall(classic=True)` written at once), times the first command
line, then plays a caller who hangs up during that prompt (SIGHUP, as Asterisk does) and
times the process to its exit (the call is logged in a temporary SQLite database).

The same is timed with every module's bytecode cached (PYTHONPYCACHEPREFIX in a temporary
folder), which matters where .pyc files are not written (PYTHONDONTWRITEBYTECODE, or a tree
the asterisk user cannot write). For the cost split, `python -c pass` (the interpreter
alone), `import sqlalchemy`, `import sqlalchemy.orm`, `import ivr.flow.engine,
ivr.drivers.agi.protocol` (what the first prompt needs) and `import ivr.runner` (everything
the call flow imports) are timed to their exit; then one `python -X importtime` run of
ivr-agi lists the heaviest imports.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fakes import FakeAsteriskCall, _encode, hangup  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))]


def one_call(argv: list[str], env: dict[str, str]) -> tuple[float, float, FakeAsteriskCall, int]:
    """(seconds to the first command, seconds to exit, the call, exit status) for one classic AGI call."""
    call = FakeAsteriskCall([hangup()], classic=True, env={"agi_arg_1": "1888"})
    greeting = call.greeting().encode("utf-8")
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    first = float("nan")
    try:
        proc.stdin.write(greeting)  # Asterisk writes the environment right away
        proc.stdin.flush()
        while True:
            line = proc.stdout.readline()
            if not line:
                break
            if first != first:
                first = time.perf_counter() - t0
            proc.stdin.write(_encode(call.handle(line.decode("utf-8", "replace"))))
            proc.stdin.flush()
            if call.sighup_pending:
                call.sighup_pending = False
                proc.send_signal(signal.SIGHUP)
    except BrokenPipeError:
        pass
    finally:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        code = proc.wait(30)
        total = time.perf_counter() - t0
        err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    if err.strip():
        print(f"  ivr-agi stderr: {err.strip()[:300]}", file=sys.stderr)
    return first, total, call, code


def to_exit(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def row(label: str, values: list[float]) -> str:
    return (f"  {label:<52} {pct(values, 50) * 1000:7.1f} {pct(values, 90) * 1000:7.1f} "
            f"{min(values) * 1000:7.1f} {statistics.mean(values) * 1000:7.1f}")


def importtime(argv: list[str], env: dict[str, str], top: int) -> list[tuple[int, str]]:
    """The heaviest top-level imports (cumulative microseconds) of one ivr-agi start."""
    call = FakeAsteriskCall([hangup()], classic=True, env={"agi_arg_1": "1888"})
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv[1:]], input=call.greeting().encode(),
                          capture_output=True, env=env, timeout=30)
    out: list[tuple[int, str]] = []
    for line in proc.stderr.decode("utf-8", "replace").splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        depth = (len(m.group(3)) - 1) // 2 if m else 99
        if m and depth <= 3:  # imports up to three levels deep
            out.append((int(m.group(2)), "  " * depth + m.group(4)))
    return sorted(out, key=lambda x: -x[0])[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)

    bindir = Path(sys.executable).parent
    ivr_agi = bindir / "ivr-agi"
    python = str(bindir / "python")
    tmp = Path(tempfile.mkdtemp(prefix="bench-classic-"))
    try:
        from ivr.db import make_engine
        from ivr.migrate import upgrade

        url = f"sqlite:///{tmp / 'ivr.sqlite3'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        env.update({"IVR_DATABASE_URL": url, "IVR_DATA_DIR": str(tmp / "data"), "IVR_VAR_DIR": str(tmp / "var")})
        # The program Asterisk runs: the console script itself (its #! line names the venv's python).
        cmd = [str(ivr_agi)]
        # The same with every module's bytecode cached (PYTHONPYCACHEPREFIX, filled by the warm-up run),
        # in case this environment does not write .pyc files (PYTHONDONTWRITEBYTECODE, read-only tree).
        cached_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached_env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        one_call(cmd, env)  # warm the OS page cache once, not counted
        one_call(cmd, cached_env)  # writes the bytecode cache, not counted
        runs: dict[str, tuple[list[float], list[float]]] = {}
        for label, e in (("as run here", env), ("bytecode cached", cached_env)):
            firsts, totals = [], []
            for _ in range(args.runs):
                first, total, call, code = one_call(cmd, e)
                if not call.commands or not call.commands[0].startswith("STREAM FILE"):
                    print(f"unexpected first command: {call.commands[:1]}; exit {code}", file=sys.stderr)
                    return 1
                firsts.append(first)
                totals.append(total)
            runs[label] = (firsts, totals)
        baselines = {
            "python -c pass": [python, "-c", "pass"],
            'python -c "import sqlalchemy"': [python, "-c", "import sqlalchemy"],
            'python -c "import sqlalchemy.orm"': [python, "-c", "import sqlalchemy.orm"],
            'python -c "import ivr.flow.engine"': [python, "-c", "import ivr.flow.engine, ivr.drivers.agi.protocol"],
            'python -c "import ivr.runner"': [python, "-c", "import ivr.runner"],
        }
        base_times = {label: [to_exit(a, env) for _ in range(args.runs)] for label, a in baselines.items()}

        print(f"classic AGI start-up, {args.runs} runs each, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
              f"; PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')}")
        print(f"  {'':<52} {'p50 ms':>7} {'p90 ms':>7} {'min ms':>7} {'mean ms':>7}")
        firsts, totals = runs["as run here"]
        print(row("ivr-agi: spawn -> first AGI command", firsts))
        print(row("ivr-agi: spawn -> exit (caller hangs up at once)", totals))
        print(row("ivr-agi, bytecode cached: spawn -> first command", runs["bytecode cached"][0]))
        for label, values in base_times.items():
            print(row(f"{label} (to exit)", values))
        interp = pct(base_times["python -c pass"], 50)
        sqla = pct(base_times['python -c "import sqlalchemy.orm"'], 50)
        calls = pct(base_times['python -c "import ivr.runner"'], 50)
        flow = pct(base_times['python -c "import ivr.flow.engine"'], 50)
        first50 = pct(firsts, 50)
        print()
        print(f"  the first command (p50 {first50 * 1000:.0f} ms) needs the interpreter ({interp * 1000:.0f} ms) and "
              f"the flow engine + AGI protocol (+{(flow - interp) * 1000:.0f} ms to exit); reading the settings, "
              f"loading the flow and the greeting add {(first50 - flow) * 1000:+.0f} ms;")
        print(f"  SQLAlchemy and the rest of ivr.runner ({calls * 1000:.0f} ms to exit, sqlalchemy.orm alone "
              f"+{(sqla - interp) * 1000:.0f} ms) are imported after it, while the welcome prompt plays")
        print()
        print("  heaviest imports of one ivr-agi start, up to 3 levels deep (python -X importtime, cumulative ms):")
        for us, name in importtime(cmd_for_importtime(ivr_agi), env, 14):
            print(f"    {us / 1000:7.1f}  {name}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cmd_for_importtime(ivr_agi: Path) -> list[str]:
    """[python, script]: the console script run by the interpreter, so -X importtime can be added."""
    return [sys.executable, str(ivr_agi)]


if __name__ == "__main__":
    sys.exit(main())
