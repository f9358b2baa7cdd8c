from nnunet_mae.cli import doctor
from nnunet_mae.cli.main import main


def test_clean_bill_when_everything_is_set(tmp_path, monkeypatch, capsys):
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / var).mkdir()
        monkeypatch.setenv(var, str(tmp_path / var))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "All checks passed." in out and "PROBLEM" not in out


def test_names_the_problem_and_the_fix_when_results_is_unset(tmp_path, monkeypatch, capsys):
    for var in ("nnUNet_raw", "nnUNet_preprocessed"):
        monkeypatch.setenv(var, str(tmp_path))
    monkeypatch.delenv("nnUNet_results", raising=False)
    assert doctor.main([]) == 1
    out = capsys.readouterr().out
    assert "[PROBLEM] nnUNet_results: not set" in out
    assert "export nnUNet_results=" in out


def test_reports_unregistered_trainer_folder(monkeypatch, capsys):
    monkeypatch.setenv("nnUNet_extTrainer", "/nowhere")
    checks = {c.name: c for c in doctor.check_trainers()}
    assert not checks["nnUNet_extTrainer"].ok and "pip install -e ." in checks["nnUNet_extTrainer"].fix
    assert not checks["nnU-Net finds the trainers"].ok
