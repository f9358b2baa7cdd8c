import json
import sys

import pytest

from nnunet_mae.cli import demo
from nnunet_mae.cli.main import main


@pytest.mark.slow
def test_tiny_demo_runs_every_stage_and_reports(tmp_path, capsys):
    assert main(["demo", "--budget", "tiny", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Dice on the test cases" in out
    rows = {line.split()[0] + " " + line.split()[1] for line in out.splitlines()
            if line.startswith(("from scratch", "MAE pre-trained"))}
    assert rows == {"from scratch", "MAE pre-trained"}
    assert (tmp_path / "demo_summary.png").stat().st_size > 0
    logs = sorted(p.name for p in (tmp_path / "logs").glob("*.log"))
    assert len(logs) == 10 and logs[0] == "02_plan_and_preprocess.log" and logs[1] == "03_add_unlabeled.log"
    pretrain_log = (tmp_path / "logs" / "04_pretrain.log").read_text()
    budget = demo.BUDGETS["tiny"]
    assert f"+ {budget.num_unlabeled} unlabeled case(s)" in pretrain_log
    commands = (tmp_path / "commands.sh").read_text()
    assert "nnUNetv2_train 990 3d_fullres all -tr nnUNetTrainerMAEPretrain_demo" in commands
    assert "This run: MAE pre-trained - from scratch = " in out
    results = json.loads((tmp_path / "demo_results.json").read_text())
    assert all(0.0 <= results["dice"][row]["mean"] <= 1.0 for row in ("from scratch", "MAE pre-trained"))
    probe = results["probe"]  # the pre-trained and a random encoder, probed with 3 seeds
    for row in ("random", "pretrained"):
        seeds = probe[row]["seeds"]
        assert len(seeds) == 3 and all(0.0 <= m <= 1.0 for m in seeds)
        assert probe[row]["spread"] == pytest.approx(max(seeds) - min(seeds))
        assert probe[row]["mean"] == pytest.approx(sum(seeds) / 3)
    assert probe["random"]["seeds"] != probe["pretrained"]["seeds"]
    assert "Probe (linear head on the frozen encoder, cross-validated over nnU-Net's 5 folds, 3 seeds)" in out
    assert json.loads((tmp_path / "probe.json").read_text())[0]["folds"] == [0, 1, 2, 3, 4]


def test_the_probe_line_says_whether_the_difference_is_beyond_the_spread():
    def line(pretrained, random):
        return demo.probe_line({"pretrained": {"mean": pretrained, "spread": 0.03},
                                "random": {"mean": random, "spread": 0.02}})

    assert "difference +0.100, above the probe's spread" in line(0.40, 0.30)
    assert "difference -0.100, below it by more than the probe's spread" in line(0.30, 0.40)
    assert "difference +0.020, within the probe's spread" in line(0.32, 0.30)


def test_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "something").write_text("")
    assert demo.main(["--out", str(tmp_path)]) == 2
    assert "is not an empty folder" in capsys.readouterr().err


def test_a_failing_stage_prints_the_command_and_the_tail_of_its_log(tmp_path):
    runner = demo.Demo(out=tmp_path, env={}, num_stages=1)
    command = [sys.executable, "-c", "print('\\n'.join(f'line {i}' for i in range(100))); raise SystemExit(3)"]
    with pytest.raises(demo.StageFailed) as failure:
        runner.run("a stage", "stage", command)
    message = str(failure.value)
    assert "exit code 3" in message and sys.executable in message
    assert "line 99" in message and "line 50" not in message  # the tail only
    assert (tmp_path / "logs" / "01_stage.log").is_file()


def test_trainer_module_gives_nnunet_trainers_with_the_budget(tmp_path, monkeypatch):
    """nnU-Net finds the written classes in the demo's extTrainer folder; instances carry the budget's settings."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from tests.training.tiny_trainer import tiny_trainer

    folder = demo.write_trainer_module(tmp_path / "trainers", "tiny", seed=3).parent
    monkeypatch.setenv("nnUNet_extTrainer", str(folder))
    budget = demo.BUDGETS["tiny"]
    found = {name: recursive_find_trainer_class_by_name(name) for name in (demo.PRETRAIN, demo.FINETUNE, demo.SCRATCH)}
    assert all(cls.__name__ == name for name, cls in found.items())
    pretrain = tiny_trainer(found[demo.PRETRAIN], tmp_path, monkeypatch)
    assert (pretrain.num_epochs, pretrain.num_iterations_per_epoch) == (budget.pretrain_epochs,
                                                                         budget.pretrain_iterations)
    assert pretrain.vit_dimensions() == budget.vit and pretrain.mae_decoder_dim == budget.mae_decoder["mae_decoder_dim"]
    assert pretrain.finetune_trainer_name == demo.FINETUNE
    assert pretrain.seed == 3 and pretrain.reconstruction_png_every == budget.pretrain_epochs
    for name in (demo.FINETUNE, demo.SCRATCH):
        trainer = tiny_trainer(found[name], tmp_path, monkeypatch)
        assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (
            budget.finetune_epochs, budget.finetune_iterations, budget.val_iterations)
        assert trainer.vit_dimensions() == budget.vit and trainer.decoder == budget.decoder
        assert trainer.seed == 3
    assert found[demo.FINETUNE].pretrain_trainer_name == demo.PRETRAIN


def test_pretraining_gets_more_iterations_than_each_finetuning():
    for budget in demo.BUDGETS.values():
        assert (budget.pretrain_epochs * budget.pretrain_iterations
                > budget.finetune_epochs * budget.finetune_iterations)
