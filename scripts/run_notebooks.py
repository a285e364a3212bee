#!/usr/bin/env python3
"""Run notebooks top to bottom in a fresh kernel; fail on the first error.

    <python> scripts/run_notebooks.py [--timeout SECONDS] NOTEBOOK.ipynb ...

Needs nothing but the standard library and `jupyter_client`, which `ipykernel` (in
requirements.txt) depends on: no nbformat, nbclient or book tools. That is the point: it
runs the chapters in an environment made from requirements.txt alone
(tests/test_runtime_env.py), the environment Binder builds and a student installs.

The kernel is the `python3` kernel of the interpreter that runs this script, started in the
notebook's folder (as nbval and `make notebooks` run them). Cells tagged `raises-exception`
may fail; cells tagged `skip-execution` or `nbval-skip` are not run. Before the first
notebook it prints which interpreter the kernel runs and which book tools it can import
(a line starting with "kernel:", as JSON), so the caller can check the isolation.
Exit code 0 if every cell ran, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from jupyter_client.manager import start_new_kernel

SKIP_TAGS = {"skip-execution", "nbval-skip"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PROBE = """import importlib.util, json, sys
print("kernel:" + json.dumps({"executable": sys.executable, "prefix": sys.prefix,
      "book_tools": [m for m in ("myst_nb", "jupyter_book", "sphinx", "nbval", "pytest", "nbformat", "nbclient")
                     if importlib.util.find_spec(m)]}))"""


def execute(client, code: str, timeout: float) -> tuple[str, str | None]:
    """Run code in the kernel; (stdout text, error traceback or None)."""
    out: list[str] = []
    errors: list[str] = []

    def hook(msg: dict) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content.get("name") == "stdout":
            out.append(content["text"])
        elif kind == "error":
            errors.append(ANSI.sub("", "\n".join(content["traceback"])))

    reply = client.execute_interactive(code, timeout=timeout, output_hook=hook, allow_stdin=False,
                                       stop_on_error=True)
    if reply["content"]["status"] == "error" and not errors:
        content = reply["content"]
        errors.append(f"{content.get('ename')}: {content.get('evalue')}")
    return "".join(out), (errors[0] if errors else None)


def run(path: Path, timeout: float, probe: bool = False) -> bool:
    nb = json.loads(path.read_text(encoding="utf-8"))
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(path.parent.resolve()))
    start, ran = time.monotonic(), 0
    try:
        if probe:
            text, error = execute(client, PROBE, timeout)
            print(error or text.strip(), flush=True)
        for index, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            tags = set(cell.get("metadata", {}).get("tags", []))
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if tags & SKIP_TAGS or not source.strip():
                continue
            _, error = execute(client, source, timeout)
            ran += 1
            if error and "raises-exception" not in tags:
                print(f"FAILED {path}: cell {index} (code cell {ran}):\n{source}\n---\n{error}", flush=True)
                return False
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    print(f"ok {path}: {ran} code cells in {time.monotonic() - start:.1f} s", flush=True)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description="Run notebooks top to bottom; fail on an error.")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per cell (default 600)")
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args()
    ok = True
    for i, path in enumerate(args.notebooks):
        ok = run(path, args.timeout, probe=i == 0) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
