#!/usr/bin/env python3
"""Run notebooks top to bottom in a fresh kernel; fail on the first error.

    <python> scripts/run_notebooks.py [--timeout SECONDS] [--compare [--sanitize FILE]] NOTEBOOK.ipynb ...

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

With --compare, every code cell's fresh outputs must also equal the outputs stored in the
notebook, compared as nbval compares them: stream text (per stream, consecutive chunks
joined) and every representation of a result or display except images and JavaScript, after
the regex replacements of the nbval sanitize file given with --sanitize (tests/sanitize.cfg:
memory addresses, temporary file names, clock times). Glue records (MyST-NB's invisible
`application/papermill.record/` outputs) are ignored on both sides; cells tagged
`nbval-ignore-output` are run but not compared. Every differing cell is reported.
"""

from __future__ import annotations

import argparse
import configparser
import difflib
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


SKIP_MIMES = ("image/", "application/javascript", "application/vnd.jupyter.widget")
GLUE_PREFIX = "application/papermill.record/"


def load_sanitizers(path: Path | None) -> list[tuple[re.Pattern, str]]:
    """(regex, replacement) pairs of an nbval sanitize file."""
    if path is None:
        return []
    config = configparser.ConfigParser(interpolation=None)
    config.read(path, encoding="utf-8")
    return [(re.compile(config[s]["regex"]), config[s]["replace"]) for s in config.sections()
            if "regex" in config[s] and "replace" in config[s]]


def comparable(outputs: list[dict], sanitizers: list[tuple[re.Pattern, str]]) -> list[tuple]:
    """Outputs reduced to what is compared: (kind, name or mime, sanitized text)."""
    def clean(text) -> str:
        text = "".join(text) if isinstance(text, list) else str(text)
        for regex, replace in sanitizers:
            text = regex.sub(replace, text)
        return text

    found: list[tuple] = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            text = "".join(output["text"]) if isinstance(output["text"], list) else output["text"]
            if found and found[-1][0] == "stream" and found[-1][1] == output["name"]:
                found[-1] = ("stream", output["name"], found[-1][2] + text)
            else:
                found.append(("stream", output["name"], text))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            if any(mime.startswith(GLUE_PREFIX) for mime in data):
                continue
            for mime in sorted(data):
                if not mime.startswith(SKIP_MIMES):
                    found.append(("data", mime, clean(data[mime])))
        elif kind == "error":
            found.append(("error", output.get("ename", ""), clean(output.get("evalue", ""))))
    # streams are sanitized once joined: the kernel may split a line over several chunks
    return [(k, n, clean(t) if k == "stream" else t) for k, n, t in found]


def execute(client, code: str, timeout: float, outputs: list[dict] | None = None) -> tuple[str, str | None]:
    """Run code in the kernel; (stdout text, error traceback or None). The cell's outputs,
    as notebook output dicts, are appended to `outputs` if given."""
    out: list[str] = []
    errors: list[str] = []

    def hook(msg: dict) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if outputs is not None:
            if kind == "stream":
                outputs.append({"output_type": "stream", "name": content["name"], "text": content["text"]})
            elif kind in ("execute_result", "display_data"):
                outputs.append({"output_type": kind, "data": content.get("data", {})})
            elif kind == "error":
                outputs.append({"output_type": "error", "ename": content.get("ename", ""),
                                "evalue": content.get("evalue", "")})
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


def run(path: Path, timeout: float, probe: bool = False,
        sanitizers: list[tuple[re.Pattern, str]] | None = None) -> bool:
    """Run one notebook; with `sanitizers` (a list, maybe empty) also compare the outputs."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(path.parent.resolve()))
    start, ran, differing = time.monotonic(), 0, 0
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
            fresh: list[dict] = []
            _, error = execute(client, source, timeout, fresh)
            ran += 1
            if error and "raises-exception" not in tags:
                print(f"FAILED {path}: cell {index} (code cell {ran}):\n{source}\n---\n{error}", flush=True)
                return False
            if sanitizers is not None and "nbval-ignore-output" not in tags:
                stored = comparable(cell.get("outputs", []), sanitizers)
                got = comparable(fresh, sanitizers)
                if stored != got:
                    differing += 1
                    diff = difflib.unified_diff(
                        [f"{k} {n}: {line}" for k, n, t in stored for line in t.splitlines()],
                        [f"{k} {n}: {line}" for k, n, t in got for line in t.splitlines()],
                        "stored", "fresh", lineterm="", n=1)
                    print(f"DIFFERENT OUTPUT {path}: cell {index} (code cell {ran}):\n{source}\n---\n"
                          + "\n".join(list(diff)[:40]), flush=True)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    if differing:
        print(f"FAILED {path}: {differing} cell(s) with outputs different from the stored ones", flush=True)
        return False
    compared = " (outputs equal to the stored ones)" if sanitizers is not None else ""
    print(f"ok {path}: {ran} code cells in {time.monotonic() - start:.1f} s{compared}", flush=True)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description="Run notebooks top to bottom; fail on an error.")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--compare", action="store_true",
                        help="fail if a cell's outputs differ from the stored ones (as nbval)")
    parser.add_argument("--sanitize", type=Path, help="nbval sanitize file applied before comparing")
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args()
    sanitizers = load_sanitizers(args.sanitize) if args.compare else None
    ok = True
    for i, path in enumerate(args.notebooks):
        ok = run(path, args.timeout, probe=i == 0, sanitizers=sanitizers) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
