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
    monkeypatch.setattr(doctor, "machine_load", lambda: (0.1, 2))  # idle
    monkeypatch.setattr("nnunet_mae.training.precision.measure_bf16_speedup",
                        lambda seconds: {"conv3d": 0.5, "matmul": 1.2})  # geometric mean 0.77: slower overall
    check = {c.name: c for c in doctor.check_device()}["CPU precision"]
    assert not check.ok and "conv3d 0.50x" in check.detail and "_fp32" in check.fix
    monkeypatch.setattr("nnunet_mae.training.precision.measure_bf16_speedup",
                        lambda seconds: {"conv3d": 0.8, "matmul": 2.2})  # one slower kernel, faster overall
    assert {c.name: c for c in doctor.check_device()}["CPU precision"].ok


def test_install_fixes_use_the_packages_own_ranges_not_pins(monkeypatch):
    """A broken torch gets the range setup.py declares (never a pinned build that may not match the GPU driver)."""
    import importlib

    real_import = importlib.import_module

    def broken_torch(name, *args):
        if name in ("torch", "nnunetv2"):
            raise OSError(f"{name}: undefined symbol")
        return real_import(name, *args)

    monkeypatch.setattr(doctor.importlib, "import_module", broken_torch)
    checks = {c.name: c for c in doctor.check_imports()}
    assert not checks["import torch"].ok and '"torch>=2.5"' in checks["import torch"].fix
    assert "==" not in checks["import torch"].fix
    assert checks["import nnunetv2"].fix == 'pip install "nnunetv2>=2.8.1"'


def test_a_slow_measurement_on_a_busy_machine_does_not_overrule_the_trainers(monkeypatch):
    """Under load (other jobs on the 2 cores) the 1-s timing is noise: the advice agrees with the automatic choice."""
    _patch_cpu(monkeypatch, {"avx2", "avx512f", "avx512_bf16", "amx_tile"})
    monkeypatch.setattr(doctor, "machine_load", lambda: (2.3, 2))
    monkeypatch.setattr("nnunet_mae.training.precision.measure_bf16_speedup",
                        lambda seconds: {"conv3d": 0.64, "matmul": 0.81})
    check = {c.name: c for c in doctor.check_device()}["CPU precision"]
    assert check.ok and "choose mixed precision: bf16" in check.detail
    assert "busy (load average 2.3 on 2 core(s))" in check.detail and "the trainers' choice stands" in check.detail


def test_the_measurement_runs_and_returns_both_ratios():
    from nnunet_mae.training.precision import measure_bf16_speedup

    ratios = measure_bf16_speedup(seconds=0.2)
    assert set(ratios) == {"conv3d", "matmul"} and all(r > 0 for r in ratios.values())


def test_check_results_names_a_planted_pickle_without_running_it(tmp_path, capsys):
    """nnUNetv2_predict would unpickle fold_0/checkpoint_final.pth; doctor --check-results reads it weights-only."""
    import os

    import torch

    good, bad = tmp_path / "fold_0", tmp_path / "fold_1"
    good.mkdir(), bad.mkdir()
    torch.save({"network_weights": {"w": torch.zeros(2)}, "current_epoch": 3}, good / "checkpoint_final.pth")
    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"network_weights": {}, "x": Planted()}, bad / "checkpoint_final.pth")
    assert main(["doctor", "--check-results", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "[ok] fold_0/checkpoint_final.pth: weights only" in out
    assert "[PROBLEM] fold_1/checkpoint_final.pth: Refused to load" in out and "system" in out
    assert "do not run nnUNetv2_predict" in out
    assert not marker.exists()
    assert main(["doctor", "--check-results", str(good)]) == 0
