"""`nnunet_mae probe` on the synthetic dataset 990: the table for a pre-trained and a random encoder, and clear
refusals of checkpoints it cannot probe (missing, unreadable, unsafe, other dimensionality, not of this package)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.cli_helpers import run
from tests.conftest import DATASET_ID

pytestmark = pytest.mark.slow


class Foreign:
    """An object a weights-only load must refuse."""


def probe(env, checkpoint, *extra, expect_ok=True):
    return run(["nnunet_mae", "probe", "-d", DATASET_ID, "-c", "3d_fullres", "-i", checkpoint, *extra], env,
               expect_ok=expect_ok)


def test_table_for_the_pretrained_and_a_random_encoder(workspace, mae_pretrained, tmp_path):
    _, env = workspace
    out = tmp_path / "probe.json"
    result = probe(env, mae_pretrained / "checkpoint_final.pth", "--random", "--seeds", "2", "--device", "cpu",
                   "--json", out)
    rows = json.loads(out.read_text())
    assert [r["encoder"] for r in rows] == ["nnUNetTrainerMAEPretrain_e2e (checkpoint_final.pth)",
                                            "random init, same shape"]
    for row in rows:
        assert len(row["seeds"]) == 2 and len(row["dice_mean"]) == len(row["labels"]) == 2
        assert all(0.0 <= d <= 1.0 for d in row["dice_mean"]) and row["spread"] >= 0 and row["seconds"] > 0
        assert f"| {row['encoder']} | " in result.stdout and f"{row['mean']:.3f}" in result.stdout
    assert rows[0]["seeds"] != rows[1]["seeds"]  # two different encoders


def test_same_seeds_same_table(workspace, mae_pretrained, tmp_path):
    _, env = workspace
    tables = []
    for name in ("a.json", "b.json"):
        probe(env, mae_pretrained / "checkpoint_final.pth", "--seeds", "1", "--device", "cpu", "--json",
              tmp_path / name)
        tables.append(json.loads((tmp_path / name).read_text())[0]["seeds"])
    assert tables[0] == tables[1]


def test_several_folds_cross_validate_the_probe(workspace, mae_pretrained, tmp_path):
    root, env = workspace
    dice = {}
    for folds in (["0"], ["1"], ["0", "1"]):
        out = tmp_path / f"{'_'.join(folds)}.json"
        result = probe(env, mae_pretrained / "checkpoint_final.pth", "-f", *folds, "--seeds", "1", "--device", "cpu",
                       "--json", out)
        row = json.loads(out.read_text())[0]
        assert row["folds"] == [int(f) for f in folds]
        dice[len(dice)] = row["seeds"][0]
    assert "cross-validated over folds 0, 1" in result.stdout
    splits = json.loads(next(root.glob("preprocessed/*/splits_final.json")).read_text())
    n0, n1 = len(splits[0]["val"]), len(splits[1]["val"])  # every validation case of the tiny dataset is probed
    for label, combined in enumerate(dice[2]):  # each fold's Dice, weighted by its validation cases
        parts = [(n, d[label]) for n, d in ((n0, dice[0]), (n1, dice[1])) if d[label] == d[label]]
        assert combined == pytest.approx(sum(n * d for n, d in parts) / sum(n for n, _ in parts))


def test_checkpoints_it_cannot_probe_are_refused_with_the_reason(workspace, mae_pretrained, tmp_path):
    _, env = workspace
    cases = {}
    cases["does not exist"] = tmp_path / "missing.pth"
    (tmp_path / "truncated.pth").write_bytes((mae_pretrained / "checkpoint_final.pth").read_bytes()[:1000])
    cases["could not be read"] = tmp_path / "truncated.pth"

    torch.save({"network_weights": {}, "payload": Foreign()}, tmp_path / "unsafe.pth")
    cases["Refused to load"] = tmp_path / "unsafe.pth"
    torch.save({"network_weights": {}}, tmp_path / "plain.pth")  # no nnunet_mae metadata: another tool's file
    cases["nnunet_mae"] = tmp_path / "plain.pth"
    for message, checkpoint in cases.items():
        result = probe(env, checkpoint, expect_ok=False)
        assert result.returncode != 0 and "Traceback" not in result.stderr, checkpoint
        assert message in result.stderr, (message, result.stderr[-2000:])
    result = run(["nnunet_mae", "probe", "-d", DATASET_ID, "-c", "2d", "-i", mae_pretrained / "checkpoint_final.pth"],
                 env, expect_ok=False)
    assert result.returncode != 0 and "Probe it with -c 3d_fullres" in result.stderr
