"""The install puts nnunet_mae_ext.pth into site-packages (setup.py): every wheel pip builds, regular and editable
(PEP 660), holds it at its root with a matching RECORD line, and its line registers the trainer folder."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nnunet_mae.nnunet_ext import EXT_TRAINER_DIR

ROOT = Path(__file__).resolve().parents[1]
PTH = "nnunet_mae_ext.pth"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """Both wheels, built by setuptools' PEP 517/660 hooks (what pip calls) from a copy of the project."""
    src = tmp_path_factory.mktemp("project")
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "nnunet_mae", src / "nnunet_mae", ignore=shutil.ignore_patterns("__pycache__"))
    out = src / "wheels"
    out.mkdir()
    for hook in ("build_wheel", "build_editable"):  # one process each, as pip runs them
        subprocess.run([sys.executable, "-c", f"import sys; from setuptools import build_meta; "
                        f"build_meta.{hook}(sys.argv[1])", str(out)], cwd=src, capture_output=True, check=True)
    editable = [w for w in out.glob("*.whl") if ".editable-" in w.name]
    regular = [w for w in out.glob("*.whl") if ".editable-" not in w.name]
    assert len(editable) == len(regular) == 1, sorted(out.iterdir())
    return {"regular": regular[0], "editable": editable[0]}


@pytest.mark.parametrize("kind", ["regular", "editable"])
def test_every_wheel_holds_the_pth_at_its_root_with_its_record_line(wheels, kind):
    with zipfile.ZipFile(wheels[kind]) as wheel:
        data = wheel.read(PTH)
        record = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
        lines = wheel.read(record).decode().splitlines()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert f"{PTH},sha256={digest},{len(data)}" in lines  # pip checks it, and removes the file on uninstall
    assert data.decode().count("\n") == 1 and data.startswith(b"import ")  # `site` executes import lines only


def test_the_pth_line_registers_the_trainer_folder_and_keeps_the_users_folders(wheels):
    with zipfile.ZipFile(wheels["regular"]) as wheel:
        line = wheel.read(PTH).decode()
    env = dict(os.environ, nnUNet_extTrainer="/my/trainers")
    code = f"{line.strip()}\nimport os; print(os.environ['nnUNet_extTrainer'])"
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n{code}"], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out.split(os.pathsep) == ["/my/trainers", EXT_TRAINER_DIR]
