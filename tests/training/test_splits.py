"""The 5-fold split file: nnU-Net's split, written atomically; a broken file gets an error naming it."""

import json

import pytest
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_mae.training.splits import write_default_split
from nnunet_mae.training.trainers import nnUNetTrainerViT
from tests.training.test_bad_inputs import fake_preprocessed_cases
from tests.training.tiny_trainer import tiny_trainer


def test_same_split_as_nnunet_writes(tmp_path, monkeypatch):
    ours = tiny_trainer(nnUNetTrainerViT, tmp_path / "ours", monkeypatch, fold=1)
    fake_preprocessed_cases(ours, 12)
    train, val = ours.do_split()
    theirs = tiny_trainer(nnUNetTrainer, tmp_path / "theirs", monkeypatch, fold=1)
    fake_preprocessed_cases(theirs, 12)
    theirs.dataset_class = nnUNetDatasetBlosc2
    assert (train, val) == theirs.do_split()
    ours_file = json.loads((tmp_path / "ours" / "preprocessed" / "Dataset999_Tiny" / "splits_final.json").read_text())
    theirs_file = json.loads((tmp_path / "theirs" / "preprocessed" / "Dataset999_Tiny" /
                              "splits_final.json").read_text())
    assert ours_file == theirs_file


def test_written_atomically_without_leftovers(tmp_path):
    path = tmp_path / "splits_final.json"
    splits = write_default_split(path, [f"case_{i}" for i in range(7)])
    assert json.loads(path.read_text()) == splits and [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("content, why", [("", r"it is empty \(0 bytes\)"),
                                          ("[{\"train\": ", "it is not readable JSON"),
                                          ("{\"a\": 1}", "it is not a list of")])
def test_broken_split_file_is_named_with_the_fix(tmp_path, monkeypatch, content, why):
    trainer = tiny_trainer(nnUNetTrainerViT, tmp_path, monkeypatch, fold=0)
    fake_preprocessed_cases(trainer, 6)
    split = tmp_path / "preprocessed" / "Dataset999_Tiny" / "splits_final.json"
    split.parent.mkdir(parents=True, exist_ok=True)
    split.write_text(content)
    with pytest.raises(ValueError, match=rf"The split file {split} cannot be used: {why}.*delete it"):
        trainer.do_split()
