"""No Docker engine here, so the Dockerfile's steps are replayed by hand.

Build stage: copy what the Dockerfile copies into an empty context and run its `pip wheel`
commands (the locked dependencies, hash-checked, and our wheel). Runtime stage: a clean virtual
environment and the image's own `pip install` commands from the wheelhouse only (`--no-index`),
then the image's CMD (the demo) and its HEALTHCHECK command, run with the venv's python from a
directory outside the repository.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.test_restart import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stage = ""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "FROM":
            stage = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
        found.append((stage, word, rest.strip()))
    return found


def one(stage: str, word: str) -> list[str]:
    return [rest for s, w, rest in instructions() if s == stage and w == word]


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result  # type: ignore[no-any-return]


def test_dockerfile_replay_builds_installs_runs_the_demo_and_passes_its_healthcheck(
    tmp_path: Path,
) -> None:
    # --- build stage: COPY the same files, RUN the same pip wheel -------------------------
    context = tmp_path / "src"
    context.mkdir()
    for copy in one("build", "COPY"):
        *sources, dest = copy.split()
        for source in sources:
            target = context / dest / Path(source).name if dest.endswith("/") else context / dest
            if (ROOT / source).is_dir():
                shutil.copytree(
                    ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target)
    (build_run,) = [r for r in one("build", "RUN") if r.startswith("pip wheel")]
    wheels = tmp_path / "wheels"
    for command in build_run.split("&&"):
        args = shlex.split(command.replace("/wheels", str(wheels)))
        assert args[:2] == ["pip", "wheel"], command
        run([sys.executable, "-m", *args], cwd=context)
    assert len(list(wheels.glob("webcare_monitor-*.whl"))) == 1
    assert len(list(wheels.glob("*.whl"))) > 20  # the locked dependencies came along

    # --- runtime stage: clean venv, install from the wheelhouse only ----------------------
    (install,) = [r for r in one("runtime", "RUN") if "python -m venv" in r]
    mounts = dict(re.findall(r"source=(\S+),target=(\S+)", " ".join(one("runtime", "RUN"))))
    assert mounts == {"/wheels": "/wheels", "/src/requirements": "/requirements"}
    venv = tmp_path / "venv"
    commands = install[install.index("python -m venv") :].split("&&")
    assert commands[0].split() == ["python", "-m", "venv", "/opt/webcare-monitor"]
    run([sys.executable, "-m", "venv", str(venv)])
    for command in commands[1:]:
        replaced = (
            command.replace("/opt/webcare-monitor", str(venv))
            .replace("/wheels", str(wheels))
            .replace("/requirements", str(context / "requirements"))
        )
        args = shlex.split(replaced)
        assert "--no-index" in args, command  # the runtime stage fetches nothing
        run([found for arg in args for found in (glob.glob(arg) if "*" in arg else [arg])])
    outside = tmp_path / "run"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", PYTHONUNBUFFERED="1")
    where = run(
        ["python", "-c", "import monitor, sys; print(monitor.__file__, monitor.__version__)"],
        cwd=outside,
        env=env,
    ).stdout
    assert where.startswith(str(venv)), where  # the installed wheel, not the source tree
    assert "0.0.0+unknown" not in where

    # --- the image's CMD and HEALTHCHECK ---------------------------------------------------
    port = free_port()
    (entrypoint,) = one("runtime", "ENTRYPOINT")
    (cmd,) = one("runtime", "CMD")
    command = [*json.loads(entrypoint), *json.loads(cmd)]
    assert command[:2] == ["webcare-monitor", "demo"] and "0.0.0.0" in command
    command = [str(port) if part == "9464" else part for part in command]
    (healthcheck,) = one("runtime", "HEALTHCHECK")
    probe = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert probe[0] == "python"
    assert "urllib" in probe[-1] and "127.0.0.1:9464/healthz" in probe[-1]
    probe[-1] = probe[-1].replace(":9464/", f":{port}/")

    log = tmp_path / "demo.log"
    with log.open("wb") as stderr:
        demo = subprocess.Popen(
            [*command, "--workdir", str(tmp_path / "demo")],
            cwd=outside,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        # Generous on a loaded CI machine: a fresh venv compiles every module at first import.
        deadline = time.monotonic() + 60
        healthy = None
        while time.monotonic() < deadline:
            healthy = subprocess.run(probe, cwd=outside, env=env, capture_output=True, text=True)
            if healthy.returncode == 0:
                break
            assert demo.poll() is None, log.read_text()[-3000:]
            time.sleep(0.3)
        assert healthy is not None and healthy.returncode == 0, log.read_text()[-3000:]
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired as err:
            demo.kill()
            demo.wait()
            tail = log.read_text()[-3000:]
            raise AssertionError(f"Ctrl-C did not stop the demo:\n{tail}") from err
    assert demo.returncode == 0, log.read_text()[-3000:]
    # With the service gone the same probe reports unhealthy.
    down = subprocess.run(probe, cwd=outside, env=env, capture_output=True, text=True)
    assert down.returncode != 0
