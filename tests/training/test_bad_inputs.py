"""Bad input gets an error that says what happened and what to do."""

import pytest
import torch
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

from nnunet_mae.training.trainers import (nnUNetTrainerGMIMPretrain, nnUNetTrainerMAEFinetune,
                                          nnUNetTrainerMAEPretrain, nnUNetTrainerViT)
from nnunet_mae.transfer.encoder_transfer import TransferError
from tests.training.tiny_trainer import tiny_trainer


def fake_preprocessed_cases(trainer, count):
    folder = trainer.preprocessed_dataset_folder
    import os
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        for ending in ("b2nd", "pkl"):
            open(os.path.join(folder, f"case_{i:03d}.{ending}"), "w").close()
    trainer.dataset_class = nnUNetDatasetBlosc2


def test_dataset_too_small_for_the_5_fold_split(tmp_path, monkeypatch):
    trainer = tiny_trainer(nnUNetTrainerViT, tmp_path, monkeypatch, fold=0)
    fake_preprocessed_cases(trainer, 3)
    with pytest.raises(ValueError, match=r"has 3 training case\(s\).*at least 5\. Train on fold 'all'"):
        trainer.do_split()
    every = tiny_trainer(nnUNetTrainerViT, tmp_path, monkeypatch, fold="all")
    every.dataset_class = nnUNetDatasetBlosc2
    train, val = every.do_split()  # fold 'all' needs no split
    assert sorted(train) == ["case_000", "case_001", "case_002"]


@pytest.mark.parametrize("trainer_class", [nnUNetTrainerMAEPretrain, nnUNetTrainerGMIMPretrain])
def test_pretraining_the_cascade_stage_points_to_its_parent(trainer_class, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="Pre-train on '3d_fullres' instead"):
        tiny_trainer(trainer_class, tmp_path, monkeypatch, configuration="3d_cascade_fullres")


def test_cascade_finetuning_starts_from_the_parent_pretraining(tmp_path, monkeypatch):
    trainer = tiny_trainer(nnUNetTrainerMAEFinetune, tmp_path, monkeypatch, configuration="3d_cascade_fullres")
    assert trainer.pretraining_configuration() == "3d_fullres"
    assert trainer.pretraining_folder().parent.name == "nnUNetTrainerMAEPretrain__nnUNetPlans__3d_fullres"
    with pytest.raises(FileNotFoundError, match="nnUNetv2_train Dataset999_Tiny 3d_fullres all -tr "
                                                "nnUNetTrainerMAEPretrain`"):
        trainer.locate_pretrained()


def pretrained_file(tmp_path, monkeypatch, trainer_class=nnUNetTrainerMAEPretrain):
    """A real pre-training checkpoint of the tiny plans, written by the trainer's own save_checkpoint."""
    pretrainer = tiny_trainer(trainer_class, tmp_path / "pre", monkeypatch)
    pretrainer.initialize()
    path = tmp_path / "pretrained.pth"
    pretrainer.save_checkpoint(str(path))
    return path


def finetuner(tmp_path, monkeypatch, path, trainer_class=nnUNetTrainerMAEFinetune):
    monkeypatch.setenv("nnUNet_MAE_pretrained", str(path))
    trainer = tiny_trainer(trainer_class, tmp_path / "ft", monkeypatch, fold=0)
    trainer.initialize()
    return trainer


def test_corrupt_pretrained_checkpoint(tmp_path, monkeypatch):
    path = pretrained_file(tmp_path, monkeypatch)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a copy cut short
    with pytest.raises(RuntimeError, match="corrupt or not a PyTorch checkpoint.*resume with --c"):
        finetuner(tmp_path, monkeypatch, path).load_pretrained_encoder()


def test_missing_pretrained_file_named_by_the_variable(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nnUNet_MAE_pretrained=.*does not point to a file"):
        finetuner(tmp_path, monkeypatch, tmp_path / "nowhere.pth").load_pretrained_encoder()


def test_pretrained_checkpoint_of_another_size(tmp_path, monkeypatch):
    class nnUNetTrainerMAEPretrain_T(nnUNetTrainerMAEPretrain):
        vit_preset = "T"

    path = pretrained_file(tmp_path, monkeypatch, nnUNetTrainerMAEPretrain_T)
    trainer = finetuner(tmp_path, monkeypatch, path)
    before = trainer.network.encoder.blocks[0].attn.qkv.weight.clone()
    with pytest.raises(TransferError, match="pre-trained by nnUNetTrainerMAEPretrain_T with embed_dim 192"
                                            ".*same ViT size and token size"):
        trainer.load_pretrained_encoder()
    assert torch.equal(before, trainer.network.encoder.blocks[0].attn.qkv.weight)  # nothing half-loaded


def test_checkpoint_without_package_metadata(tmp_path, monkeypatch):
    path = tmp_path / "foreign.pth"
    torch.save({"network_weights": {}}, path)
    with pytest.raises(TransferError, match="carries no 'nnunet_mae' metadata"):
        finetuner(tmp_path, monkeypatch, path).load_pretrained_encoder()


def test_nan_input_names_the_case_and_says_no_checkpoint_exists_yet(tmp_path, monkeypatch):
    trainer = tiny_trainer(nnUNetTrainerMAEPretrain, tmp_path, monkeypatch)
    trainer.initialize()
    trainer.on_train_epoch_start()
    data = torch.randn(2, 1, 16, 24, 16)
    data[1, 0, 0, 0, 0] = float("inf")
    with pytest.raises(FloatingPointError) as error:
        trainer.train_step({"data": data, "target": None, "keys": ["case_a", "case_b"]})
    message = str(error.value)
    assert "no checkpoint had been written yet" in message and "untouched" not in message
    assert "case(s) case_b contains NaN or inf" in message and "case_a" not in message


def test_diverging_loss_on_finite_inputs_names_the_checkpoints_kept(tmp_path, monkeypatch):
    trainer = tiny_trainer(nnUNetTrainerMAEPretrain, tmp_path, monkeypatch)
    trainer.initialize()
    trainer.on_train_epoch_start()
    trainer.save_checkpoint(f"{trainer.output_folder}/checkpoint_latest.pth")
    monkeypatch.setattr(trainer, "compute_loss", lambda data, target: torch.tensor(float("nan")))
    with pytest.raises(FloatingPointError) as error:
        trainer.train_step({"data": torch.randn(2, 1, 16, 24, 16), "target": None, "keys": ["a", "b"]})
    message = str(error.value)
    assert "(checkpoint_latest.pth) are untouched" in message and "inputs (cases a, b) are finite" in message


def test_constant_pretraining_images_are_reported_once(tmp_path, monkeypatch):
    trainer = tiny_trainer(nnUNetTrainerMAEPretrain, tmp_path, monkeypatch)
    trainer.initialize()
    trainer.on_train_epoch_start()
    data = torch.randn(2, 1, 16, 24, 16)
    data[0] = 0.0
    for _ in range(2):
        trainer.train_step({"data": data, "target": None, "keys": ["zeros", "fine"]})
    log = open(trainer.log_file).read()
    assert log.count("WARNING: constant pre-training image(s) zeros ") == 1 and "fine (every" not in log


def test_full_disk_says_what_to_do_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    trainer = tiny_trainer(nnUNetTrainerMAEPretrain, tmp_path, monkeypatch)
    trainer.initialize()
    path = f"{trainer.output_folder}/checkpoint_latest.pth"
    trainer.save_checkpoint(path)
    before = open(path, "rb").read()

    def full(*args, **kwargs):
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match=r"Could not write the checkpoint .*GiB are free.*resume with `--c`.*intact"):
        trainer.save_checkpoint(path)
    assert open(path, "rb").read() == before


def test_2d_pretraining_for_3d_finetuning_is_refused_naming_the_configurations(tmp_path, monkeypatch):
    path = pretrained_file(tmp_path, monkeypatch)
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["nnunet_mae"]["network_kwargs"]["input_shape"] = [24, 16]
    checkpoint["nnunet_mae"]["network_kwargs"]["token_size"] = [8, 8]
    checkpoint["nnunet_mae"]["configuration"] = "2d"
    torch.save(checkpoint, path)
    with pytest.raises(TransferError, match=r"holds a 2D encoder \(pre-trained on configuration '2d'.*needs a 3D one"):
        finetuner(tmp_path, monkeypatch, path).load_pretrained_encoder()
