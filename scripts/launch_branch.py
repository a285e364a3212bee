#!/usr/bin/env python3
"""Commit the launch notebooks to the branch that the Binder and Colab buttons open.

    python3 scripts/launch_branch.py [--branch BRANCH] [--launch _build/launch] [--push]

The book's Binder and Colab buttons open `book/<chapter>.ipynb` on the branch named in
_config.yml (`repository: branch: notebooks`), not on `main`. That branch is generated: each
of its commits is the tree of `main`'s HEAD with every chapter replaced by its launch notebook
(written by `make book` to _build/launch/, see _ext/launch_notebooks.py). Everything else is
`main`'s, so Binder finds requirements.txt, runtime.txt and `mlmhelpers` (installed by the
`-e .` line of requirements.txt), the data and the Colab setup cell's repository as usual.

Each commit has two parents: the previous tip of the branch (so the branch only moves
forward and a plain `git push` updates it) and `main`'s HEAD (where it comes from). Nothing
in the working tree, the index or any other branch is touched: the tree is built in a
temporary index with git's plumbing (read-tree, hash-object, update-index, write-tree,
commit-tree). If the tree equals the branch's current tree, no commit is made.

The GitHub workflow (.github/workflows/book.yml, job `notebooks`) runs it with --push after
every push to `main`. Needs only the standard library and git.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY_BRANCH = re.compile(r"^repository:\s*\n(?:[ \t]+.*\n|\s*\n)*?[ \t]+branch:\s*([^\s#]+)", re.M)
AUTHOR = ("Launch notebooks", "launch-notebooks@users.noreply.github.com")


def git(repo: Path, *args: str, env: dict | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip() if proc.returncode == 0 else ""


def config_branch(root: Path = ROOT) -> str:
    """`repository: branch:` of _config.yml (read without a YAML library): the branch the
    launch buttons open."""
    m = REPOSITORY_BRANCH.search((root / "_config.yml").read_text(encoding="utf-8"))
    if not m:
        raise ValueError("_config.yml has no `repository: branch:`")
    return m.group(1).strip("'\"")


def launch_files(launch: Path) -> dict[str, Path]:
    """{path in the repository: launch notebook} for every notebook under `launch`."""
    return {p.relative_to(launch).as_posix(): p for p in sorted(launch.rglob("*.ipynb"))}


def publish(repo: Path, launch: Path, branch: str = "notebooks", remote: str = "origin",
            push: bool = False) -> str | None:
    """Commit the launch notebooks on `branch`; returns the new commit, or None if the
    branch already has this tree."""
    files = launch_files(launch)
    if not files:
        raise ValueError(f"no launch notebooks under {launch}: run `make book` first")
    head = git(repo, "rev-parse", "--verify", "HEAD^{commit}")
    tracked = set(git(repo, "ls-tree", "-r", "--name-only", head).splitlines())
    unknown = sorted(set(files) - tracked)
    if unknown:
        raise ValueError(f"launch notebooks for files that are not in HEAD: {unknown}")
    parent = None
    for ref in (f"refs/remotes/{remote}/{branch}", f"refs/heads/{branch}"):
        parent = git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False) or None
        if parent:
            break
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(repo, "read-tree", head, env=env)
        for path, source in files.items():
            blob = git(repo, "hash-object", "-w", "--", str(source.resolve()))
            git(repo, "update-index", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = git(repo, "write-tree", env=env)
    if parent and git(repo, "rev-parse", f"{parent}^{{tree}}") == tree:
        print(f"{branch} is up to date ({parent[:12]}): nothing to commit")
        return None
    identity = {}
    if not git(repo, "config", "user.email", check=False):
        identity = {"GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1],
                    "GIT_COMMITTER_NAME": AUTHOR[0], "GIT_COMMITTER_EMAIL": AUTHOR[1]}
    parents = (["-p", parent] if parent else []) + ["-p", head]
    message = (f"Launch notebooks of {head[:12]}\n\nmain's tree at {head} with {len(files)} chapter(s) "
               "replaced by their launch notebooks (scripts/launch_branch.py).")
    commit = git(repo, "commit-tree", tree, *parents, "-m", message, env=identity)
    git(repo, "update-ref", f"refs/heads/{branch}", commit)
    print(f"{branch}: {commit[:12]} = {head[:12]} + {len(files)} launch notebook(s)")
    if push:
        git(repo, "push", remote, f"refs/heads/{branch}:refs/heads/{branch}")
        print(f"pushed {branch} to {remote}")
    return commit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--branch", help="the generated branch (default: _config.yml's repository.branch)")
    parser.add_argument("--launch", type=Path, default=ROOT / "_build" / "launch",
                        help="the launch notebooks (default: _build/launch, written by make book)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the repository (default: this one)")
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--push", action="store_true", help="push the branch to the remote")
    args = parser.parse_args(argv)
    try:
        publish(args.repo, args.launch, args.branch or config_branch(args.repo), args.remote, args.push)
    except (ValueError, RuntimeError) as exc:
        print(f"launch_branch: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
