"""documentation/architecture.md's layer table, checked against the code: which folder of the package may import
which, and which folders have no nnU-Net imports."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nnunet_mae"
ROW = re.compile(r"^\| (\d+) \| `(\w+)/` \| (.*) \| (.*) \|$")


def layer_table() -> dict[str, dict]:
    rows = {}
    for line in (ROOT / "documentation" / "architecture.md").read_text().splitlines():
        if match := ROW.match(line):
            floor, folder, holds, may_import = match.groups()
            rows[folder] = {"floor": int(floor), "row": holds + " " + may_import, "may_import": may_import}
    for folder, row in rows.items():
        named = set(re.findall(r"`(\w+)/`", row["may_import"]))
        if "everything below" in row["may_import"]:
            named |= {f for f, r in rows.items() if r["floor"] < row["floor"]}
        row["allowed"] = named | {folder}
    return rows


def imports_of(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, also inside functions; relative imports resolved."""
    found = []
    package = path.relative_to(root).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
    return found


def violations(row: dict, paths: list[Path], root: Path = ROOT) -> list[str]:
    """The imports of `paths` (modules of one folder) that its table row does not allow."""
    wrong = []
    for path in paths:
        for line, module in imports_of(path, root):
            parts = module.split(".")
            where = f"{path.relative_to(root)}:{line} imports {module}"
            if parts[0] == "nnunet_mae":
                target = parts[1] if len(parts) > 1 else ""
                if target == "" and "`__version__`" in row["may_import"]:
                    continue
                if target not in row["allowed"]:
                    wrong.append(where)
            elif parts[0] == "nnunetv2" and "no nnU-Net imports" in row["row"]:
                wrong.append(where + " (the row says: no nnU-Net imports)")
    return wrong


def modules_by_folder() -> dict[str, list[Path]]:
    folders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        folders.setdefault(parts[0] if len(parts) > 1 else "", []).append(path)
    return folders


def test_every_folder_of_the_package_has_a_row():
    table = layer_table()
    assert set(modules_by_folder()) - {""} <= set(table), "a folder of nnunet_mae is missing from architecture.md"
    assert {"cli", "training", "backbones", "probing", "transfer", "masking", "architectures", "losses",
            "data", "nnunet_ext"} <= set(table)


def test_rows_only_list_folders_below():
    table = layer_table()
    for folder, row in table.items():
        above = [f for f in row["allowed"] - {folder} if table[f]["floor"] > row["floor"]]
        assert not above, f"architecture.md: {folder}/ may import {above}, which sit above it"


@pytest.mark.parametrize("folder", sorted(set(modules_by_folder()) - {""}))
def test_imports_follow_the_table(folder):
    wrong = violations(layer_table()[folder], modules_by_folder()[folder])
    assert not wrong, "imports that documentation/architecture.md does not allow:\n" + "\n".join(wrong)


def test_the_start_up_hook_module_stays_free_of_torch_and_nnunet():
    """nnunet_ext/__init__.py runs in every interpreter (the .pth hook): no heavy imports."""
    heavy = [m for _, m in imports_of(PACKAGE / "nnunet_ext" / "__init__.py")
             if m.split(".")[0] in {"torch", "nnunetv2", "nnunet_mae"}]
    assert not heavy


def test_the_check_reports_an_upward_import_and_an_nnunet_import(tmp_path):
    losses = tmp_path / "nnunet_mae" / "losses"
    losses.mkdir(parents=True)
    (losses / "bad.py").write_text("import torch\n\n\ndef f():\n    from ..training.trainers import nnUNetTrainerViT\n"
                                   "    from nnunetv2.paths import nnUNet_results\n")
    (losses / "good.py").write_text("import torch\nfrom nnunet_mae.losses.reconstruction import x\n")
    table = layer_table()
    assert violations(table["losses"], [losses / "good.py"], tmp_path) == []
    wrong = violations(table["losses"], [losses / "bad.py"], tmp_path)
    assert wrong == ["nnunet_mae/losses/bad.py:5 imports nnunet_mae.training.trainers",
                     "nnunet_mae/losses/bad.py:6 imports nnunetv2.paths (the row says: no nnU-Net imports)"]
