"""nnU-Net finds every trainer by name, through the installed .pth hook, as `nnUNetv2_train -tr` does."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

from nnunet_mae.nnunet_ext import EXT_TRAINER_DIR
from nnunet_mae.training import trainers


def test_installed_hook_registers_the_trainer_folder_in_a_new_interpreter():
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}
    out = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('nnUNet_extTrainer'))"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert EXT_TRAINER_DIR in out.split(os.pathsep), (
        "nnunet_mae_ext.pth is not active: reinstall with `pip install -e .` (see README)")


@pytest.mark.parametrize("name", trainers.__all__)
def test_nnunet_finds_each_trainer_by_name(name, monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", EXT_TRAINER_DIR)
    assert recursive_find_trainer_class_by_name(name) is getattr(trainers, name)


def test_trainer_names_are_unique_and_not_in_nnunet():
    """nnU-Net takes the first class whose name matches: every exported name must be new to nnU-Net."""
    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    assert len(set(trainers.__all__)) == len(trainers.__all__)
    folder = os.path.join(nnunetv2.__path__[0], "training", "nnUNetTrainer")
    clashes = [name for name in trainers.__all__
               if recursive_find_python_class(folder, name, "nnunetv2.training.nnUNetTrainer") is not None]
    assert not clashes

BENCHMARK_TRAINERS = Path(__file__).resolve().parents[2] / "benchmarks" / "trainers"


def benchmark_trainer_names() -> list[str]:
    """Trainer classes defined (as real classes, greppable) in the benchmarks' nnUNet_extTrainer folder."""
    return [node.name for path in sorted(BENCHMARK_TRAINERS.glob("*.py"))
            for node in ast.parse(path.read_text()).body if isinstance(node, ast.ClassDef) and "Trainer" in node.name]


@pytest.mark.parametrize("name", benchmark_trainer_names())
def test_nnunet_finds_each_benchmark_trainer_by_name(name, monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", os.pathsep.join([str(BENCHMARK_TRAINERS), EXT_TRAINER_DIR]))
    found = recursive_find_trainer_class_by_name(name)
    assert found.__name__ == name and found.__module__ in {p.stem for p in BENCHMARK_TRAINERS.glob("*.py")}


def test_benchmark_trainer_names_are_unique_and_new():
    names = benchmark_trainer_names()
    assert len(names) >= 20 and len(set(names)) == len(names)
    assert not set(names) & set(trainers.__all__)


def test_the_hook_is_a_file_of_the_installed_distribution():
    """pip records the hook, so `pip uninstall nnunet_mae` removes it; doctor looks for it under this name."""
    from nnunet_mae.nnunet_ext import PTH_NAME
    from tests.cli.test_main import installed_distribution

    assert PTH_NAME in [str(f) for f in installed_distribution().files]


def documented_trainer_names() -> dict[str, list[str]]:
    """Every `nnUNetTrainer...` class name the README and documentation/ mention, with the files that mention it;
    results-folder names (`<trainer>__<plans>__<configuration>`) are cut at the `__`."""
    import re

    root = Path(__file__).resolve().parents[2]
    names: dict[str, list[str]] = {}
    for path in [root / "README.md", *sorted((root / "documentation").rglob("*.md"))]:
        for match in re.finditer(r"\bnnUNetTrainer\w*", path.read_text()):
            name = match.group(0).split("__")[0]
            names.setdefault(name, []).append(str(path.relative_to(root)))
    return names


# documented as examples of a user's own subclass, not as trainers of the package
USER_SUBCLASS_EXAMPLES = {"nnUNetTrainerMAEPretrain_seed0", "nnUNetTrainerViT_mine"}


def test_every_documented_trainer_name_is_found_by_nnunet(monkeypatch):
    """What the docs name, a user types after -tr: each one must be a trainer of the package, of nnU-Net, or of
    the benchmarks' extTrainer folder (benchmarks.md)."""
    monkeypatch.setenv("nnUNet_extTrainer", os.pathsep.join([str(BENCHMARK_TRAINERS), EXT_TRAINER_DIR]))
    documented = documented_trainer_names()
    assert {"nnUNetTrainerMAEPretrain_5epochs", "nnUNetTrainerMAEFinetune_PrimusV3B_smoke"} <= set(trainers.__all__)
    assert len(documented) > 30
    missing = {}
    for name, files in documented.items():
        if name in USER_SUBCLASS_EXAMPLES:
            continue
        try:
            recursive_find_trainer_class_by_name(name)
        except RuntimeError:
            missing[name] = sorted(set(files))
    assert not missing, f"documented but not found by nnU-Net: {missing}"


def test_the_variant_sentence_holds_for_every_trainer():
    """README: every trainer has `_smoke`, `_5epochs`, `_50epochs`, `_250epochs` and `_fp32`/`_bf16` variants."""
    bases = [name for name in trainers.__all__
             if not any(name.endswith(f"_{s}") for s in [*trainers.SCHEDULES, *trainers.PRECISIONS])]
    assert len(bases) > 20
    for base in bases:
        for suffix in [*trainers.SCHEDULES, *trainers.PRECISIONS]:
            assert f"{base}_{suffix}" in trainers.__all__, f"{base}_{suffix}"
