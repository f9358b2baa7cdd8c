"""benchmarks/label_efficiency.py: the label-fraction split nnU-Net's own trainers read, and the equal-iteration
view."""

import json
import sys
from pathlib import Path

from nnunetv2.utilities.crossval_split import generate_crossval_split

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import label_efficiency  # noqa: E402
import label_efficiency_protocol  # noqa: E402
import label_efficiency_report  # noqa: E402


def test_fractions_are_seeded_subsets_of_nnunets_fold_0_with_its_validation_cases():
    cases = [f"case_{i:03d}" for i in range(200)]
    splits = label_efficiency.label_fraction_splits(cases)
    fold0 = generate_crossval_split(cases, seed=12345, n_splits=5)[0]
    full, tenth = (splits[label_efficiency_protocol.FRACTIONS[f][0]] for f in ("100%", "10%"))
    assert sorted(full["train"]) == sorted(fold0["train"]) and sorted(full["val"]) == sorted(fold0["val"])
    assert len(tenth["train"]) == 16 and set(tenth["train"]) < set(full["train"])
    assert tenth["val"] == full["val"]
    assert label_efficiency.label_fraction_splits(cases) == splits  # seeded: the same cases every time


def test_pseudo_dice_at_equal_iterations_takes_the_last_epoch_within_the_count():
    run = {"iterations_per_epoch": 10, "pseudo_dice": [0.1, 0.2, 0.3, 0.4]}
    assert label_efficiency_report.pseudo_dice_at(run, 25) == 0.2
    assert label_efficiency_report.pseudo_dice_at(run, 400) == 0.4
    assert label_efficiency_report.pseudo_dice_at(run, 9) is None


def test_every_arm_trains_its_base_trainer_with_the_equal_time_budget(monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_mae.nnunet_ext import EXT_TRAINER_DIR

    folder = Path(label_efficiency.__file__).parent / "trainers"
    monkeypatch.setenv("nnUNet_extTrainer", f"{folder}:{EXT_TRAINER_DIR}")
    sys.path.insert(0, str(folder))
    from label_efficiency_trainers import EqualTime

    for arm in [*label_efficiency_protocol.ARMS.values(), *label_efficiency_protocol.PRETRAININGS.values()]:
        trainer, base = (recursive_find_trainer_class_by_name(n) for n in (arm.trainer, arm.base))
        assert trainer.__mro__[1].__name__ == EqualTime.__name__ and trainer.__mro__[2] is base
        assert arm.pretraining is None or arm.pretraining in label_efficiency_protocol.PRETRAININGS
    for arm in label_efficiency_protocol.ARMS.values():
        assert (arm.pretraining is None) == (arm.scratch is None)
        if arm.scratch:
            assert label_efficiency_protocol.ARMS[arm.scratch].pretraining is None


def test_gain_is_judged_against_the_seed_spread_only_when_there_are_two_seeds():
    def run(arm, seed, dice):
        return {"arm": arm, "seed": seed, "mean_dice": dice}

    one = label_efficiency_report.gains([run("mae", 0, 0.5), run("vit", 0, 0.4)])
    assert len(one) == 1 and "+0.100" in one[0] and "not measured" in one[0]
    two = label_efficiency_report.gains([run("mae", 0, 0.50), run("mae", 1, 0.52), run("vit", 0, 0.40),
                                         run("vit", 1, 0.45)])
    assert "+0.085" in two[0] and "spread 0.050: gain more than the spread" in two[0]
    close = label_efficiency_report.gains([run("mae", 0, 0.40), run("mae", 1, 0.50), run("vit", 0, 0.40),
                                           run("vit", 1, 0.45)])
    assert "spread 0.100: gain not more than the spread" in close[0]


def test_seed_options_set_the_runs_and_zero_seeds_skips_a_fraction():
    default = label_efficiency_protocol.planned_runs(label_efficiency.parse(["--arms", "vit,mae"]))
    assert default[:4] == [("10%", 0, "vit"), ("10%", 0, "mae"), ("100%", 0, "vit"), ("100%", 0, "mae")]
    runs = label_efficiency_protocol.planned_runs(
        label_efficiency.parse(["--arms", "vit,mae", "--seeds_10", "3", "--seeds_100", "0"]))
    assert runs == [("10%", seed, arm) for seed in range(3) for arm in ("vit", "mae")]


def test_an_arm_with_its_scratch_arms_network_gets_the_same_iterations(tmp_path):
    args = label_efficiency.parse(["--arms", "cnn,vit,mae", "--work", str(tmp_path), "--seconds_per_arm", "400"])
    steps = {"nnUNetTrainer": 4.0, "nnUNetTrainerViT": 1.0, "nnUNetTrainerMAEFinetune": 1.5,
             "nnUNetTrainerMAEPretrain": 0.25}
    (tmp_path / "step_times.json").write_text(json.dumps({"step_seconds": steps, "machine": {}}))
    label_efficiency.time_arms(args, {})
    total = json.loads((tmp_path / "budget.json").read_text())["total_iterations"]
    assert total["nnUNetTrainerViT_le"] == total["nnUNetTrainerMAEFinetune_le"] == 8 * round(400 / 1.25 / 8)
    assert total["nnUNetTrainer_le"] == 8 * round(400 / 4.0 / 8)  # no partner: its own step time
