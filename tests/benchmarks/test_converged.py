"""benchmarks/converged.py: the convergence criterion, budgets that cannot change under finished runs, the scouts'
progress files, the snapshots fine-tuning starts from, the folds, and the report's verdicts."""

import json
import subprocess
import sys
import time
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


def nnunet_ema(pseudo_dice: list[float]) -> list[float]:
    """nnU-Net's logger: the EMA starts at the first epoch's pseudo Dice, then 0.9 * EMA + 0.1 * pseudo Dice."""
    ema = [pseudo_dice[0]]
    for value in pseudo_dice[1:]:
        ema.append(0.9 * ema[-1] + 0.1 * value)
    return ema


def test_the_criterion_reads_the_ema_without_its_start_unless_the_scout_read_it_as_it_is():
    pseudo = [0.0] + [0.84] * 99  # a network that has learnt all it will after one epoch
    ema = nnunet_ema(pseudo)
    weighted = converged.weighted_mean(ema)
    assert weighted[1:] == pytest.approx([0.84 * (1 - 0.9**k) / (1 - 0.9 ** (k + 1)) for k in range(1, 100)])
    as_it_is = converged.convergence_epoch(ema, 0.01, 0.1, 20)
    without_start = converged.convergence_epoch(weighted, 0.01, 0.1, 20)
    assert as_it_is >= 50 and without_start <= 22  # the EMA's own start, not the network, held it back
    rising = [min(0.8, 0.02 * e) for e in range(100)]  # a network still learning is not declared converged earlier
    assert converged.convergence_epoch(converged.weighted_mean(nnunet_ema(rising)), 0.01, 0.1, 20) > 40
    rule = {"tolerance": 0.01, "min_dice": 0.1, "min_epochs": 20}
    assert converged.criterion_curve(ema, rule) == ema  # a scout written before the choice read the EMA as it is
    assert converged.criterion_curve(ema, {**rule, "curve": "weighted"}) == weighted
    assert converged.parse([]).curve == "weighted"


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


def test_an_interrupted_pre_training_resumes_from_its_last_probe(tmp_path, monkeypatch):
    args = converged.parse(["--work", str(tmp_path), "--probe_every", "3"])
    monkeypatch.setattr(converged, "train", lambda *a, **k: None)
    converged.pretrain(args, {}, "cnn")
    attributes = json.loads(converged.budget_file(args, "pretrain", "cnn").read_text())["attributes"]
    assert attributes["save_every"] == attributes["probe_every"] == 3  # checkpoint_latest at every probe


def test_a_stopped_scout_leaves_no_worker_behind(tmp_path):
    def running(pid: int) -> bool:  # a killed orphan may stay a zombie until its new parent reaps it
        stat = Path(f"/proc/{pid}/stat")
        return stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"

    worker = tmp_path / "worker.pid"  # a parent that dies at SIGTERM, leaving its child (a data augmentation worker)
    process = subprocess.Popen(["bash", "-c", f"sleep 300 & echo $! > {worker}.tmp; mv {worker}.tmp {worker}; wait"],
                               start_new_session=True)
    deadline = time.time() + 10
    while not worker.is_file() and time.time() < deadline:
        time.sleep(0.05)
    pid = int(worker.read_text())
    assert running(pid)
    converged.stop(process)
    deadline = time.time() + 5
    while running(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not running(pid), "the worker outlived the stopped scout"


def test_every_trainer_of_the_benchmark_is_found_by_nnunet_with_its_budget_and_base(monkeypatch):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_mae.nnunet_ext import EXT_TRAINER_DIR
    from nnunet_mae.training.trainers import nnUNetTrainerMAEPretrain, nnUNetTrainerMAEPretrain_CNN, nnUNetTrainerViT

    monkeypatch.setenv("nnUNet_extTrainer", f"{BENCHMARKS / 'trainers'}:{EXT_TRAINER_DIR}")
    expected = {"vit": (nnUNetTrainerViT, nnUNetTrainerMAEPretrain),
                "cnn": (nnUNetTrainer, nnUNetTrainerMAEPretrain_CNN)}
    def names(cls):
        return [c.__name__ for c in cls.__mro__]

    for name, spec in converged.BACKBONES.items():
        scout, pretrain = (recursive_find_trainer_class_by_name(n) for n in (spec.scout, spec.pretrain))
        scratch, finetune = (recursive_find_trainer_class_by_name(n) for n in (spec.scratch, spec.finetune))
        assert issubclass(scratch, expected[name][0]) and "EqualTime" in names(scratch)
        # the scout is the scratch arm that also writes its progress
        assert [n for n in names(scout) if n not in (spec.scout, "WritesProgress", spec.scratch)] == \
            [n for n in names(scratch) if n != spec.scratch] and "WritesProgress" in names(scout)
        # in the precision of the arm fine-tuned from MAE: the package's own, or nnU-Net's steps under it
        assert issubclass(scratch, nnUNetTrainerViT) or "AutocastSteps" in names(scratch)
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
    args = converged.parse(["--work", str(tmp_path), "--out", str(tmp_path / "out")])
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
    converged.reference(args, {}, "cnn")  # the CNN pair has no reference of its own: nnU-Net's CNN is the reference
    assert len(calls) == 3
    assert converged.BACKBONES["cnn"].scratch != converged.REFERENCE  # the pair's scratch arm: the package's precision


@pytest.mark.parametrize("native_bf16", [True, False])
def test_the_cnn_pairs_scratch_arm_runs_nnunets_steps_in_the_packages_cpu_precision(monkeypatch, native_bf16):
    from nnunet_mae.training import precision

    monkeypatch.setattr(precision, "cpu_info", lambda: precision.CPUInfo(
        model="test CPU", amx=native_bf16, avx512_bf16=False, capability="AVX512"))

    class Steps:  # stands for nnUNetTrainer's steps: the autocast their network and loss run under
        device = torch.device("cpu")

        def train_step(self, batch):
            return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None

        validation_step = train_step

    class Trainer(converged_trainers.AutocastSteps, Steps):
        pass

    trainer, expected = Trainer(), torch.bfloat16 if native_bf16 else None
    assert trainer.train_step({}) == expected and trainer.validation_step({}) == expected
    assert not torch.is_autocast_enabled("cpu")  # only around the steps


def test_every_backbones_runs_come_before_any_check_and_the_references_last(tmp_path, monkeypatch):
    calls = []
    for stage in ("scout", "pretrain", "runs", "check", "reference"):
        monkeypatch.setitem(converged.STAGES, stage, lambda a, e, n, stage=stage: calls.append((stage, n)))
    monkeypatch.setattr(converged, "environment", lambda args: {})
    converged.main(["--work", str(tmp_path), "--out", str(tmp_path / "out"), "--stages",
                    "scout,pretrain,runs,check,reference"])
    assert calls == [("scout", "vit"), ("pretrain", "vit"), ("runs", "vit"), ("scout", "cnn"), ("pretrain", "cnn"),
                     ("runs", "cnn"), ("check", "vit"), ("check", "cnn"), ("reference", "vit"), ("reference", "cnn")]


def test_the_report_reads_each_runs_ema_after_a_quarter_and_half_of_its_epochs():
    run = {"ema_fg_dice": [0.1 * e for e in range(1, 9)]}  # 8 epochs
    assert converged_report.ema_at(run, 0.25) == pytest.approx(0.2) and converged_report.ema_at(run, 0.5) == \
        pytest.approx(0.4)
    assert converged_report.ema_at({"ema_fg_dice": [0.3]}, 0.25) == 0.3  # at least the first epoch


def landed_record(out: Path, runs: list[dict], probe_records: list[dict] | None = None) -> None:
    """What an earlier session committed to --out: runs, the ViT scout's budget, perhaps a probe curve."""
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps(runs))
    curve = {"finished": True, "cpu": "landed CPU", "noise": 0.05, "stop_epoch": 3,
             "records": probe_records} if probe_records else None
    (out / "protocol.json").write_text(json.dumps({
        "scouts": {"vit": {"backbone": "vit", "epochs": 8, "converged": True, "iterations": 400, "train_minutes": 9.0,
                           "ema_fg_dice": [0.5] * 8, "epoch_seconds": [60.0] * 8, "cpu": "landed CPU",
                           "criterion": {"tolerance": 0.01, "min_dice": 0.1, "min_epochs": 4}}},
        "probe_curves": {"vit": curve, "cnn": None}, "references": {}, "stopping_check": {}}))


def landed_run(arm: str, seed: int, dice: float) -> dict:
    return {"arm": arm, "backbone": "vit", "pretrained": arm.endswith("mae"), "seed": seed, "iterations": 400,
            "dice": dice, "converged": True, "train_minutes": 9.0, "ema_fg_dice": [0.5] * 8, "cpu": "landed CPU"}


def test_a_lost_work_folder_continues_from_what_has_landed_and_scratch_runs_need_no_pretraining(tmp_path,
                                                                                                monkeypatch):
    out, work = tmp_path / "out", tmp_path / "work"
    landed_record(out, [landed_run("vit_scratch", 0, 0.84), landed_run("vit_mae", 0, 0.83)])
    calls = []
    monkeypatch.setattr(converged, "train", lambda args, env, trainer, fold, folder, log, **k: calls.append(log))
    monkeypatch.setattr(converged, "environment", lambda args: {})
    argv = ["--work", str(work), "--out", str(out), "--backbones", "vit", "--stages", "runs"]
    converged.main(argv)
    assert json.loads((work / "scout_vit.json").read_text())["epochs"] == 8  # the landed budget, not a new scout
    assert json.loads((work / "records" / "scout_vit.json").read_text())["machine"]["cpu"] == "landed CPU"
    assert calls == ["vit_scratch_seed1", "vit_scratch_seed2"]  # seed 0 landed; no pre-training: no MAE runs
    args, calls[:] = converged.parse(argv), []
    folder = converged.pretrain_folder(args, "vit")
    (folder / "snapshots").mkdir(parents=True)
    (folder / "snapshots" / "epoch_0004.pth").write_bytes(b"")
    torch.save({"probe": {"stop_epoch": None}}, folder / "checkpoint_final.pth")  # a pre-training run again
    converged.main(argv)
    assert calls == ["vit_scratch_seed1", "vit_mae_seed1", "vit_scratch_seed2", "vit_mae_seed2"]


def test_a_lost_work_folder_trains_the_remaining_references_as_long_as_the_landed_ones(tmp_path, monkeypatch):
    out, work = tmp_path / "out", tmp_path / "work"
    landed_record(out, [landed_run("cnn_same_time_as_vit", 0, 0.84)])
    budget = {"epochs": 3, "iterations_per_epoch": {converged.REFERENCE: 50}, "val_iterations": 10,
              "attributes": {"save_every": 5}, "same_time_as": {"nnUNetTrainerViT_le": 8},
              "step_seconds": {"nnUNetTrainer": 4.0, "nnUNetTrainerViT": 1.5}}
    protocol = json.loads((out / "protocol.json").read_text())
    (out / "protocol.json").write_text(json.dumps(dict(protocol, references={"vit": budget})))
    calls = []
    monkeypatch.setattr(converged, "train", lambda args, env, trainer, fold, folder, log, **k: calls.append(log))
    monkeypatch.setattr(converged, "environment", lambda args: {})
    monkeypatch.setattr(converged, "step_seconds", lambda *a: pytest.fail("this machine's timing would change it"))
    argv = ["--work", str(work), "--out", str(out), "--backbones", "vit", "--stages", "reference"]
    converged.main(argv)
    assert json.loads(converged.budget_file(converged.parse(argv), "reference", "vit").read_text()) == budget
    assert calls == ["reference_vit_seed1", "reference_vit_seed2"]  # seed 0 landed
    scout = work / "scout_vit.json"
    scout.write_text(json.dumps(dict(json.loads(scout.read_text()), epochs=9)))  # a scout run with other options
    with pytest.raises(SystemExit, match="would not train as long as the arm"):
        converged.main(argv)
    scout.write_text(json.dumps(dict(json.loads(scout.read_text()), epochs=8)))
    with pytest.raises(SystemExit, match="would not train as long as the arm"):  # other options, as write_budget
        converged.main(argv + ["--iterations", "25"])


def test_the_report_keeps_the_landed_runs_and_probe_curve_that_work_no_longer_holds(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    curve = [{"epoch": -1, "iterations": 0, "minutes": 0.0, "mean_dice": 0.33},
             {"epoch": 3, "iterations": 400, "minutes": 4.0, "mean_dice": 0.40}]
    landed_record(out, [landed_run("vit_scratch", 0, 0.84), landed_run("vit_mae", 0, 0.83)], curve)
    args = converged.parse(["--work", str(work), "--out", str(out), "--backbones", "vit"])
    converged.restore(args)
    protocol = converged_report.write_report(args)
    assert [(r["arm"], r["seed"], r["dice"]) for r in json.loads((out / "results.json").read_text())] == \
        [("vit_scratch", 0, 0.84), ("vit_mae", 0, 0.83)]
    assert protocol["probe_curves"]["vit"]["records"] == curve and protocol["scouts"]["vit"]["cpu"] == "landed CPU"
    rerun = dict(protocol["probe_curves"]["vit"], records=[curve[0], dict(curve[1], mean_dice=0.38)])
    assert converged_report.earlier_probe_curves(protocol, {"vit": rerun}) == {"vit": [protocol["probe_curves"]["vit"]]}
    longer = dict(rerun, records=curve + [{"epoch": 7, "iterations": 800, "minutes": 8.0, "mean_dice": 0.41}])
    assert converged_report.earlier_probe_curves(protocol, {"vit": longer}) == {}  # the same pre-training, further on
    shown = "\n".join(converged_report.markdown(dict(protocol, probe_curves={"vit": rerun}, earlier_probe_curves={
        "vit": [protocol["probe_curves"]["vit"]]}), []))
    assert "400: 0.400" in shown and "earlier, lost with its machine" in shown and "400: 0.380" in shown


def test_the_stopping_check_reads_the_plateau_from_a_run_of_the_same_pre_training(tmp_path):
    args = converged.parse(["--work", str(tmp_path), "--out", str(tmp_path / "out"), "--backbones", "vit"])
    folder = converged.pretrain_folder(args, "vit")
    (folder / "snapshots").mkdir(parents=True)
    for epoch in (4, 8):
        (folder / "snapshots" / f"epoch_{epoch:04d}.pth").write_bytes(b"")
    torch.save({"probe": {"stop_epoch": 3}}, folder / "checkpoint_final.pth")
    converged.record(args, "pretrain_vit")  # this pre-training, identified by when it finished
    this = converged.pretraining_id(args, folder / "snapshots" / "epoch_0004.pth")
    assert this is not None
    curve = {"records": [{"epoch": 3, "mean_dice": 0.40}, {"epoch": 7, "mean_dice": 0.39}]}
    runs = [landed_run("vit_mae", 0, 0.83),  # from a pre-training lost with its machine
            dict(landed_run("vit_mae", 2, 0.85), pretraining=this), dict(landed_run("vit_mae", 1, 0.84),
                                                                         pretraining=this)]
    rows = {r["snapshot"]: r for r in converged_report.stopping_check(args, "vit", runs, curve)}
    assert (rows["plateau"]["fine_tuned_dice"], rows["plateau"]["seed"], rows["plateau"]["probe"]) == (0.84, 1, 0.40)
    assert rows["late"]["fine_tuned_dice"] is None and rows["late"]["seed"] == 0  # its check run has not finished
    assert converged_report.stopping_check(args, "vit", runs[:1], curve)[1]["fine_tuned_dice"] is None
