"""benchmarks/converged.py: the convergence criterion, budgets that cannot change under finished runs, the scouts'
progress files, the snapshots fine-tuning starts from, the folds, and the report's verdicts."""

import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path[:0] = [str(BENCHMARKS), str(BENCHMARKS / "trainers")]
import converged  # noqa: E402
import converged_report  # noqa: E402
import converged_trainers  # noqa: E402
import label_efficiency  # noqa: E402
from label_efficiency_trainers import BUDGET_ENV, EqualTime  # noqa: E402


def test_a_curve_converges_where_its_last_quarter_is_flat_and_it_has_started():
    rising = [0.02 * e for e in range(1, 41)]
    assert converged.convergence_epoch(rising, 0.01, 0.1, 8) is None
    assert converged.convergence_epoch([0.0] * 40, 0.01, 0.1, 8) is None  # flat at background only: not started
    plateau = rising[:20] + [0.4 + 0.001 * (e % 3) for e in range(20)]  # flat from epoch 21 on
    found = converged.convergence_epoch(plateau, 0.01, 0.1, 8)
    assert found is not None and 21 < found <= 40
    assert all(max(plateau[e - 1 - max(1, e // 4):e]) - min(plateau[e - 1 - max(1, e // 4):e]) >= 0.01
               for e in range(8, found))  # none earlier
    assert converged.convergence_epoch(plateau, 0.01, 0.1, 39) == 39  # never before min_epochs


def test_a_budget_file_cannot_change_under_the_runs_trained_with_it(tmp_path):
    path = tmp_path / "budget.json"
    converged.write_budget(path, {"epochs": 10})
    converged.write_budget(path, {"epochs": 10})  # the same options again: fine
    with pytest.raises(SystemExit, match="another budget"):
        converged.write_budget(path, {"epochs": 12})
    assert json.loads(path.read_text()) == {"epochs": 10}


class FakeTrainer:
    """Stands in for an nnU-Net trainer: the attributes EqualTime and WritesProgress touch."""

    def __init__(self, plans, configuration, fold, dataset_json, device=None):
        self.num_epochs, self.probe_every, self.local_rank = 1000, 15, 0

    def on_epoch_end(self):
        pass


def test_the_budget_file_sets_epochs_per_trainer_and_existing_attributes_only(tmp_path, monkeypatch):
    class Budgeted(EqualTime, FakeTrainer):
        pass

    path = tmp_path / "budget.json"
    path.write_text(json.dumps({"epochs": 10, "epochs_per_trainer": {"Budgeted": 3}, "val_iterations": 2,
                                "iterations_per_epoch": {"Budgeted": 5},
                                "attributes": {"probe_every": 4, "no_such_setting": 1}}))
    monkeypatch.setenv(BUDGET_ENV, str(path))
    trainer = Budgeted({}, "3d_fullres", 0, {})
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (3, 5, 2)
    assert trainer.probe_every == 4 and not hasattr(trainer, "no_such_setting")


def test_a_scout_writes_its_ema_pseudo_dice_after_every_epoch(tmp_path):
    from nnunetv2.training.logging.nnunet_logger import MetaLogger

    logger = MetaLogger(str(tmp_path), resume=False)
    for epoch, (start, end, dice) in enumerate([(0.0, 8.0, 0.1), (10.0, 19.0, 0.2)]):
        logger.log("epoch_start_timestamps", start, epoch)
        logger.log("epoch_end_timestamps", end, epoch)
        logger.log("mean_fg_dice", dice, epoch)  # nnU-Net's logger derives the EMA from it

    class Scout(converged_trainers.WritesProgress, FakeTrainer):
        pass

    scout = Scout({}, "3d_fullres", 0, {})
    scout.output_folder, scout.logger, scout.num_iterations_per_epoch = str(tmp_path), logger, 50
    scout.on_epoch_end()
    progress = converged.read_progress(tmp_path)
    assert progress == {"ema_fg_dice": [0.1, pytest.approx(0.11)], "epoch_seconds": [8.0, 9.0],
                        "iterations_per_epoch": 50}
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, nothing left beside it


def test_every_trainer_of_the_benchmark_is_found_by_nnunet_with_its_budget_and_base(monkeypatch):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_mae.nnunet_ext import EXT_TRAINER_DIR
    from nnunet_mae.training.trainers import nnUNetTrainerMAEPretrain, nnUNetTrainerMAEPretrain_CNN, nnUNetTrainerViT

    monkeypatch.setenv("nnUNet_extTrainer", f"{BENCHMARKS / 'trainers'}:{EXT_TRAINER_DIR}")
    expected = {"vit": (nnUNetTrainerViT, nnUNetTrainerMAEPretrain),
                "cnn": (nnUNetTrainer, nnUNetTrainerMAEPretrain_CNN)}
    for name, spec in converged.BACKBONES.items():
        scout, pretrain = (recursive_find_trainer_class_by_name(n) for n in (spec.scout, spec.pretrain))
        scratch, finetune = (recursive_find_trainer_class_by_name(n) for n in (spec.scratch, spec.finetune))
        assert scout.__mro__[1].__name__ == "WritesProgress" and scout.__mro__[2].__name__ == "EqualTime"
        assert scout.__mro__[3] is expected[name][0] and scratch.__mro__[2] is expected[name][0]
        assert "SnapshotAtProbes" in [c.__name__ for c in pretrain.__mro__] and issubclass(pretrain,
                                                                                             expected[name][1])
        assert finetune.pretrain_trainer_name and pretrain.finetune_trainer_name == spec.finetune


def test_pre_training_never_sees_the_validation_cases_that_score_the_runs():
    cases = [f"hippocampus_{i:03d}" for i in range(200)]
    splits = label_efficiency.label_fraction_splits(cases)
    pretraining, labelled = splits[converged.PRETRAIN_FOLD], splits[converged.LABELLED_FOLD]
    assert not set(pretraining["train"]) & set(labelled["val"])
    assert set(labelled["train"]) < set(pretraining["train"]) and len(labelled["train"]) == 16


def test_fine_tuning_starts_from_the_snapshot_where_the_stopping_signal_came(tmp_path):
    args = converged.parse(["--work", str(tmp_path), "--backbones", "vit"])
    folder = converged.pretrain_folder(args, "vit")
    (folder / "snapshots").mkdir(parents=True)
    for epoch in (4, 8, 12, 16):
        (folder / "snapshots" / f"epoch_{epoch:04d}.pth").write_bytes(b"")
    assert converged.snapshots(args, "vit") is None  # not finished yet
    torch.save({"probe": {"stop_epoch": 11}}, folder / "checkpoint_final.pth")  # 0-based: after the 12th epoch
    chosen = converged.snapshots(args, "vit")
    assert {k: p.name for k, p in chosen.items()} == {"early": "epoch_0004.pth", "plateau": "epoch_0012.pth",
                                                     "late": "epoch_0016.pth"}
    torch.save({"probe": {"stop_epoch": None}}, folder / "checkpoint_final.pth")  # no signal: the last one
    assert converged.snapshots(args, "vit")["plateau"].name == "epoch_0016.pth"


def test_the_report_counts_a_gain_only_beyond_the_seed_spread_and_compares_rankings():
    def run(pretrained, dice, arm=None):
        return {"arm": arm or f"vit_{'mae' if pretrained else 'scratch'}", "backbone": "vit", "pretrained": pretrained,
                "dice": dice}

    clear = converged_report.gain_line("vit", [run(False, 0.70), run(False, 0.72), run(True, 0.80), run(True, 0.81)])
    assert "+0.095" in clear and ": more than the spread" in clear
    close = converged_report.gain_line("vit", [run(False, 0.60), run(False, 0.72), run(True, 0.70), run(True, 0.71)])
    assert "not more than the spread" in close
    reference = run(False, 0.85, arm="cnn_same_time_as_vit")  # nnU-Net's CNN is no scratch arm of the ViT
    assert converged_report.gain_line("vit", [run(False, 0.70), run(True, 0.71), reference]) == \
        converged_report.gain_line("vit", [run(False, 0.70), run(True, 0.71)])
    assert "0.850 (1 seeds)" in converged_report.reference_line("vit", [run(False, 0.70), reference])

    def snap(which, probe, dice):
        return {"snapshot": which, "probe": probe, "fine_tuned_dice": dice}

    assert converged_report.ranks_agree([snap("early", 0.40, 0.70), snap("plateau", 0.44, 0.72),
                                         snap("late", 0.43, 0.71)]) is True
    assert converged_report.ranks_agree([snap("early", 0.40, 0.75), snap("plateau", 0.44, 0.72),
                                         snap("late", 0.43, 0.71)]) is False
    assert converged_report.ranks_agree([snap("early", 0.40, None), snap("plateau", 0.44, 0.72)]) is None


def test_the_reference_cnn_trains_as_long_as_the_scratch_arm_and_apart_from_the_cnn_pair(tmp_path, monkeypatch):
    assert converged.reference_epochs(60, {"vit": 1.0, "cnn": 2.0}, "vit", "cnn") == 30
    assert converged.reference_epochs(3, {"vit": 0.1, "cnn": 2.0}, "vit", "cnn") == 1  # at least one epoch
    args = converged.parse(["--work", str(tmp_path)])
    assert converged.reference_folder(args, "vit", 0) != converged.run_folder(args, "cnn", False, 0)
    calls = []
    monkeypatch.setattr(converged, "train", lambda *a, **k: calls.append(k))
    converged.reference(args, {}, "vit")
    assert not calls  # no scout yet: no budget to match
    (tmp_path / "scout_vit.json").write_text(json.dumps({"epochs": 60, "converged": True}))
    timing = tmp_path / "reference_timing_vit"
    timing.mkdir()
    (timing / "step_times.json").write_text(json.dumps({"step_seconds": {"nnUNetTrainerViT": 1.0,
                                                                         "nnUNetTrainer": 3.0}}))
    converged.reference(args, {}, "vit")
    budget = json.loads(converged.budget_file(args, "reference", "vit").read_text())
    assert budget["epochs"] == 20 and budget["iterations_per_epoch"] == {converged.REFERENCE: 50}
    assert [k["seed"] for k in calls] == [0, 1, 2]
    converged.reference(args, {}, "cnn")  # nnU-Net's CNN is its own reference
    assert len(calls) == 3


def reference_setup(tmp_path, monkeypatch, cnn_scout: dict | None):
    """A workspace with the ViT's scout (60 epochs), a side-by-side timing (CNN step 3× the ViT's: 20 epochs at the
    same time) and, optionally, the CNN pair's scout; `train` recorded instead of run."""
    args = converged.parse(["--work", str(tmp_path)])
    (tmp_path / "scout_vit.json").write_text(json.dumps({"epochs": 60, "converged": True}))
    if cnn_scout is not None:
        (tmp_path / "scout_cnn.json").write_text(json.dumps(cnn_scout))
    (tmp_path / "reference_timing_vit").mkdir()
    (tmp_path / "reference_timing_vit" / "step_times.json").write_text(json.dumps(
        {"step_seconds": {"nnUNetTrainerViT": 1.0, "nnUNetTrainer": 3.0}}))
    calls = []
    monkeypatch.setattr(converged, "train", lambda *a, **k: calls.append(k))
    return args, calls


@pytest.mark.parametrize("cnn_scout, served", [({"epochs": 20, "converged": True}, True),
                                               ({"epochs": 21, "converged": True}, False),  # longer than the time
                                               ({"epochs": 20, "converged": False}, False),  # its cap, not converged
                                               (None, False)])
def test_the_cnn_pairs_converged_scratch_runs_serve_as_the_reference_only_within_the_time(
        tmp_path, monkeypatch, cnn_scout, served):
    args, calls = reference_setup(tmp_path, monkeypatch, cnn_scout)
    converged.reference(args, {}, "vit")
    budget = json.loads(converged.budget_file(args, "reference", "vit").read_text())
    assert budget["epochs"] == 20
    assert budget.get("served_by") == ({"arm": "cnn_scratch", "epochs": 20} if served else None)
    assert len(calls) == (0 if served else 3)
    runs = [{"arm": "cnn_scratch", "dice": 0.86}, {"arm": "cnn_same_time_as_vit", "dice": 0.80},
            {"arm": "vit_scratch", "dice": 0.84}]
    line = converged_report.reference_line("vit", runs, budget.get("served_by"))
    assert ("0.860 (1 seeds): the cnn_scratch runs" in line) == served and ("0.800" in line) != served


def test_a_reference_whose_runs_started_keeps_its_budget_when_the_cnn_pair_converges_later(tmp_path, monkeypatch):
    args, calls = reference_setup(tmp_path, monkeypatch, None)
    converged.reference(args, {}, "vit")  # no CNN pair yet: the reference runs
    (tmp_path / "scout_cnn.json").write_text(json.dumps({"epochs": 20, "converged": True}))
    converged.reference(args, {}, "vit")  # neither refused nor switched under the runs already made
    assert "served_by" not in json.loads(converged.budget_file(args, "reference", "vit").read_text())
    assert len(calls) == 6


def test_every_backbones_runs_come_before_any_check_and_the_references_last(tmp_path, monkeypatch):
    calls = []
    for stage in ("scout", "pretrain", "runs", "check", "reference"):
        monkeypatch.setitem(converged.STAGES, stage, lambda a, e, n, stage=stage: calls.append((stage, n)))
    monkeypatch.setattr(converged, "environment", lambda args: {})
    converged.main(["--work", str(tmp_path), "--stages", "scout,pretrain,runs,check,reference"])
    assert calls == [("scout", "vit"), ("pretrain", "vit"), ("runs", "vit"), ("scout", "cnn"), ("pretrain", "cnn"),
                     ("runs", "cnn"), ("check", "vit"), ("check", "cnn"), ("reference", "vit"), ("reference", "cnn")]


def test_the_report_reads_each_runs_ema_after_a_quarter_and_half_of_its_epochs():
    run = {"ema_fg_dice": [0.1 * e for e in range(1, 9)]}  # 8 epochs
    assert converged_report.ema_at(run, 0.25) == pytest.approx(0.2) and converged_report.ema_at(run, 0.5) == \
        pytest.approx(0.4)
    assert converged_report.ema_at({"ema_fg_dice": [0.3]}, 0.25) == 0.3  # at least the first epoch
