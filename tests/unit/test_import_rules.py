"""The layers of docs/architecture.md hold: lint-imports keeps its contracts (pyproject.toml),
and breaks them when a forbidden import is added."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the `monitor` package found first from `cwd`."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_code_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "added", "contract"),
    [
        # The pure core reaching for the store: a side effect in the SLA arithmetic.
        ("sla/evaluate.py", "import monitor.store", "The pure core imports no store"),
        # A source reaching up into the HTTP layer (and so into a cycle with it).
        ("sources/base.py", "import monitor.web.keys", "Each layer imports only the layers"),
        # Two modules of one package importing each other.
        ("store/types.py", "import monitor.store.repository", "No import cycles"),
        # A helper every layer uses, importing a layer.
        ("words.py", "import monitor.domain", "The small helpers every layer uses"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, added: str, contract: str
) -> None:
    shutil.copytree(ROOT / "monitor", tmp_path / "monitor", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "monitor" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{added}  # noqa\n", encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert contract in broken and added.split(".")[-1] in broken  # names the import


def test_no_private_name_is_imported_from_another_package() -> None:
    """A leading underscore is private to its package: other packages use public names."""
    crossings = []
    for path in sorted((ROOT / "monitor").rglob("*.py")):
        package = path.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("monitor."):
                target = ROOT.joinpath(*node.module.split("."))  # type: ignore[union-attr]
                home = (target if target.is_dir() else target.parent).relative_to(ROOT)
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and home.as_posix().replace("/", ".") != package:
                        crossings.append(f"{path.relative_to(ROOT)}: {node.module}.{alias.name}")
    assert crossings == []
