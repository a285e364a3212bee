"""The branch of launch notebooks that the Binder and Colab buttons open (scripts/launch_branch.py).

Checked on a small repository made in a temporary folder (the GitHub workflow runs the same
function on the real one, then pushes): the generated commit is main's tree with the chapters
replaced by their launch notebooks, so Binder finds requirements.txt, runtime.txt and the
package; its parents are the branch's previous tip and main's HEAD; main, the index and the
working tree are untouched; an unchanged tree makes no commit; a launch notebook for a file
main does not have is an error; --push updates a remote. And the branch it writes by default
is the one _config.yml's launch buttons open.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import launch_branch as lb  # scripts/, on sys.path through conftest.py
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "course"
    for path, text in {"requirements.txt": "numpy==2.4.6\n-e .\n", "runtime.txt": "python-3.11\n",
                       "pyproject.toml": "[project]\nname = 'mlmhelpers'\n", "mlmhelpers/__init__.py": "",
                       "book/01_chapter.ipynb": "SOURCE 1", "book/02_chapter.ipynb": "SOURCE 2",
                       "book/intro.md": "# Intro"}.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text, encoding="utf-8")
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=A", "-c", "user.email=a@example.org", "commit", "-q", "-m", "main")
    return repo


def launch_dir(tmp_path: Path, **chapters: str) -> Path:
    launch = tmp_path / "launch"
    for name, text in chapters.items():
        (launch / "book" / f"{name}.ipynb").parent.mkdir(parents=True, exist_ok=True)
        (launch / "book" / f"{name}.ipynb").write_text(text, encoding="utf-8")
    return launch


def test_branch_is_main_with_launch_notebooks(repo: Path, tmp_path: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    launch = launch_dir(tmp_path, **{"01_chapter": "LAUNCH 1", "02_chapter": "LAUNCH 2"})
    first = lb.publish(repo, launch, "notebooks")
    assert first and git(repo, "rev-parse", "notebooks") == first
    assert git(repo, "show", "notebooks:book/01_chapter.ipynb") == "LAUNCH 1"
    assert git(repo, "show", "notebooks:book/02_chapter.ipynb") == "LAUNCH 2"
    for same in ("requirements.txt", "runtime.txt", "pyproject.toml", "mlmhelpers/__init__.py", "book/intro.md"):
        assert git(repo, "rev-parse", f"notebooks:{same}") == git(repo, "rev-parse", f"main:{same}"), same
    assert git(repo, "ls-tree", "-r", "--name-only", "notebooks") == git(repo, "ls-tree", "-r", "--name-only", "main")
    assert git(repo, "rev-parse", f"{first}^@").split() == [head]
    # main, its index and working tree are untouched
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "book" / "01_chapter.ipynb").read_text() == "SOURCE 1"

    assert lb.publish(repo, launch, "notebooks") is None, "an unchanged tree made a commit"
    (launch / "book" / "01_chapter.ipynb").write_text("LAUNCH 1, changed", encoding="utf-8")
    second = lb.publish(repo, launch, "notebooks")
    assert git(repo, "rev-parse", f"{second}^@").split() == [first, head]
    assert git(repo, "show", "notebooks:book/01_chapter.ipynb") == "LAUNCH 1, changed"


def test_push_and_errors(repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    commit = lb.publish(repo, launch_dir(tmp_path, **{"01_chapter": "L"}), "notebooks", push=True)
    assert git(remote, "rev-parse", "notebooks") == commit

    with pytest.raises(ValueError, match="not in HEAD"):
        lb.publish(repo, launch_dir(tmp_path / "other", **{"99_new": "L"}), "notebooks")
    with pytest.raises(ValueError, match="no launch notebooks"):
        lb.publish(repo, tmp_path / "empty", "notebooks")


def test_default_branch_is_the_one_the_launch_buttons_open() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert lb.config_branch(ROOT) == config["repository"]["branch"] != "main"
    workflow = (ROOT / ".github" / "workflows" / "book.yml").read_text(encoding="utf-8")
    assert "scripts/launch_branch.py --push" in workflow and "contents: write" in workflow
