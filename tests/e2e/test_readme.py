"""The README's commands work as written, in order, on a fresh copy of the repository.

Every ```sh block of the README and docs/ carries a marker on the line before it:
`<!-- readme-test: run -->` (runs to the end, exit 0), `<!-- readme-test: serve URL -->` (a
long-running command: it runs until URL answers 200, then gets Ctrl-C) or
`<!-- readme-test: skip: why -->` (cannot run here, and says why). The README's blocks that are
not skipped run here in a copy of the tracked files with its own fresh venv, so nothing of the
developer's checkout (its .venv, its databases) helps them pass.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```sh$", re.M)
BLOCK = re.compile(
    r"<!-- readme-test: (?:(?P<run>run)|serve (?P<url>\S+)|skip: (?P<why>.+?)) -->\n"
    r"```sh\n(?P<code>.*?)```",
    re.S,
)
# Installing into a fresh venv needs the package index; the demo then starts in about a second.
SERVE_SECONDS = 300
RUN_SECONDS = 300


@dataclass(frozen=True)
class Block:
    """One marked shell block."""

    code: str
    url: str | None  # serve: the probe
    skip: str | None  # skip: why


def blocks(doc: Path) -> list[Block]:
    """The marked ```sh blocks of a document, in order."""
    text = doc.read_text(encoding="utf-8")
    return [Block(m["code"], m["url"], m["why"]) for m in BLOCK.finditer(text)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_shell_block_is_run_or_says_why_not(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert len(FENCE.findall(text)) == len(blocks(doc)), (
        f"{doc.name}: a ```sh block without a `<!-- readme-test: ... -->` line before it"
    )


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run ends with the README's second command, exactly (whitespace aside)."""
    tests = blocks(ROOT / "README.md")[1]
    assert tests.skip is not None and "pytest" in tests.code
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert " ".join(tests.code.split()) in " ".join(ci.split())


def fresh_copy(target: Path) -> Path:
    """The files git tracks or would track, as they are now (uncommitted edits included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:  # not a git checkout: everything but local state
        shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(".venv", "*.db*", ".git"))
        return target
    for name in listed.stdout.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def answers(url: str) -> bool:
    """Whether `url` answers 200; a token link (the queue page) must also list an item, so
    its cookie is kept across the redirect the link makes."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    try:
        with opener.open(url, timeout=5) as response:
            status, body = response.status, response.read()
    except (URLError, OSError):
        return False
    return status == 200 and ("token=" not in url or b"<article" in body)


def serve(code: str, url: str, cwd: Path, log: Path) -> None:
    """Run a long-running block until `url` answers, then stop it as Ctrl-C would."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C reaches every command
        )
    try:
        deadline = time.monotonic() + SERVE_SECONDS
        while not answers(url):
            if process.poll() is not None:
                raise AssertionError(f"ended ({process.returncode}):\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)  # a loaded CI machine; by hand it stops in ~2 s
            except subprocess.TimeoutExpired as err:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                tail = log.read_text()[-3000:]
                raise AssertionError(f"Ctrl-C did not stop it:\n{tail}") from err


def test_the_readme_commands_work_as_written_in_order(tmp_path: Path) -> None:
    repo = fresh_copy(tmp_path / "webcare-monitor")
    log = tmp_path / "readme.log"
    ran = []
    exported = ""  # the reader's shell keeps what an earlier block exported
    for block in blocks(ROOT / "README.md"):
        if block.skip is not None:
            continue
        with log.open("a") as out:
            out.write(f"\n$ {block.code}\n")
        code = exported + block.code
        exported += "".join(
            line + "\n" for line in block.code.splitlines() if line.startswith("export ")
        )
        if block.url is not None:
            serve(code, block.url, repo, log)
        else:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", code],
                cwd=repo,
                capture_output=True,
                text=True,
                timeout=RUN_SECONDS,
                check=False,
            )
            assert done.returncode == 0, f"{block.code}\n{done.stdout}\n{done.stderr}"
            with log.open("a") as out:
                out.write(done.stdout + done.stderr)
        ran.append(block)
    assert len(ran) >= 3  # the demo, running it for real, the report
    # The first block installed a fresh venv in the copy; the others used it.
    assert (repo / ".venv" / "bin" / "webcare-monitor").exists()
    assert (repo / "webcare-monitor.db").exists()  # `run` made the database the report read
