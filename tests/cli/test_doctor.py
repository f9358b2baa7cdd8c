from nnunet_mae.cli import doctor
from nnunet_mae.cli.main import main


def test_clean_bill_when_everything_is_set(tmp_path, monkeypatch, capsys):
    # the bf16/fp32 timing depends on the machine and its load; its verdict is tested below with fixed timings
    monkeypatch.setattr("nnunet_mae.training.precision.measure_bf16_speedup",
                        lambda seconds: {"conv3d": 1.5, "matmul": 1.5})
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


def _patch_cpu(monkeypatch, flags):
    monkeypatch.setattr("nnunet_mae.training.precision.cpu_flags", lambda: set(flags))


def test_reports_cpu_bf16_capability_choice_and_measured_ratio(monkeypatch):
    _patch_cpu(monkeypatch, {"avx2"})
    check = {c.name: c for c in doctor.check_device()}["CPU precision"]
    assert check.ok and "bf16: no native bf16: AVX2" in check.detail
    assert "choose mixed precision: fp32 (CPU without native bf16: AVX2)" in check.detail
    assert "conv3d" in check.detail and "matmul" in check.detail


def test_warns_when_native_bf16_measures_slower_than_fp32(monkeypatch):
    _patch_cpu(monkeypatch, {"avx2", "avx512f", "avx512_bf16", "amx_tile"})
    monkeypatch.setattr("nnunet_mae.training.precision.measure_bf16_speedup",
                        lambda seconds: {"conv3d": 0.5, "matmul": 1.2})  # geometric mean 0.77: slower overall
    check = {c.name: c for c in doctor.check_device()}["CPU precision"]
    assert not check.ok and "conv3d 0.50x" in check.detail and "_fp32" in check.fix
    monkeypatch.setattr("nnunet_mae.training.precision.measure_bf16_speedup",
                        lambda seconds: {"conv3d": 0.8, "matmul": 2.2})  # one slower kernel, faster overall
    assert {c.name: c for c in doctor.check_device()}["CPU precision"].ok
