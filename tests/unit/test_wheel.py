"""The operator's wheel is the operator: every module of it, and no demo or test code.

The wheel is built the way ``pip install .`` builds it (the Dockerfile's way into the image),
offline with the venv's own setuptools, from a copy of the checkout so that stale ``build/``
or ``*.egg-info`` directories of earlier builds can neither leak into it nor be written into
the shared checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "incident_operator"
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "*.pyc"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The file names inside the wheel built from this checkout."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "--quiet",
            "--wheel-dir",
            str(work / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    (path,) = (work / "dist").glob("incident_operator-*.whl")
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def test_the_wheel_holds_no_demo_and_no_tests(wheel: list[str]) -> None:
    unwanted = [
        name
        for name in wheel
        if "demo" in name.lower()
        or name.split("/")[0] in ("tests", "e2e", "bench", "hack", "manifests", "crds")
    ]
    assert not unwanted, f"the operator's wheel carries code it must not ship: {unwanted}"


def test_the_wheel_holds_only_the_operator_package(wheel: list[str]) -> None:
    tops = {name.split("/")[0] for name in wheel}
    metadata = {top for top in tops if top.startswith("incident_operator-")}
    assert len(metadata) == 1 and metadata.pop().endswith(".dist-info"), tops
    assert tops - {top for top in tops if top.endswith(".dist-info")} == {"incident_operator"}


def test_the_wheel_holds_every_module_of_the_operator(wheel: list[str]) -> None:
    modules = {str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*.py")} | {
        "incident_operator/py.typed"
    }
    shipped = {name for name in wheel if name.startswith("incident_operator/")}
    assert modules - shipped == set(), f"modules missing from the wheel: {modules - shipped}"
    assert shipped - modules == set(), f"unexpected files in the wheel: {shipped - modules}"
