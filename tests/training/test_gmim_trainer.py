"""GMIM trainers: found by name, static builds, nnU-Net's stock loader, and the loss / masking hooks."""

import pytest
import torch
from nnunetv2.run.load_pretrained_weights import load_pretrained_weights
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunet_mae.architectures.gmim import GMIMPretrainingNetwork
from nnunet_mae.architectures.segmentation import ViTSegmentationNetwork
from nnunet_mae.nnunet_ext import EXT_TRAINER_DIR
from nnunet_mae.training import trainers
from nnunet_mae.data.intensity_view import intensity_view
from nnunet_mae.training.gmim_trainer import nnUNetTrainerGMIMPretrain
from nnunet_mae.training.vit_trainer import nnUNetTrainerViT
from tests.training.tiny_trainer import tiny_images, tiny_trainer

GMIM_TRAINERS = ["nnUNetTrainerGMIMPretrain", "nnUNetTrainerGMIMPretrain_smoke", "nnUNetTrainerGMIMPretrain_50epochs",
                 "nnUNetTrainerGMIMPretrain_250epochs", "nnUNetTrainerGMIMFinetune", "nnUNetTrainerGMIMFinetune_smoke",
                 "nnUNetTrainerGMIMFinetune_5epochs", "nnUNetTrainerGMIMFinetune_50epochs",
                 "nnUNetTrainerGMIMFinetune_250epochs"]


def configuration(patch_size):
    return ConfigurationManager({"patch_size": list(patch_size), "architecture": {}, "batch_size": 2})


@pytest.mark.parametrize("name", GMIM_TRAINERS)
def test_nnunet_finds_each_gmim_trainer_by_name(name, monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", EXT_TRAINER_DIR)
    assert recursive_find_trainer_class_by_name(name) is getattr(trainers, name)


def test_pretrain_and_finetune_trainers_point_at_each_other():
    assert trainers.nnUNetTrainerGMIMPretrain.finetune_trainer_name == "nnUNetTrainerGMIMFinetune"
    assert trainers.nnUNetTrainerGMIMFinetune.pretrain_trainer_name == "nnUNetTrainerGMIMPretrain"
    assert trainers.nnUNetTrainerGMIMFinetune_smoke.pretrain_trainer_name == "nnUNetTrainerGMIMPretrain_smoke"


@pytest.mark.parametrize("patch, input_shape, grid", [((37, 53, 41), (40, 56, 40), (5, 7, 5)),
                                                      ((56, 40), (56, 40), (7, 5))])
def test_static_build_3d_non_cubic_and_2d(patch, input_shape, grid):
    net = nnUNetTrainerGMIMPretrain.build_network_architecture(None, configuration(patch), 1, 3, False)
    assert isinstance(net, GMIMPretrainingNetwork) and net.siamese
    assert net.encoder.input_shape == input_shape and net.encoder.grid == grid
    assert net.projector_online.net[-1].out_features == nnUNetTrainerGMIMPretrain.projector_dim
    if len(patch) == 2:  # a full forward is cheap in 2D
        images = torch.randn(2, 1, *input_shape)
        mask = torch.zeros(2, 35)
        mask[:, ::2] = 1
        out = net(images, mask, [(2, mask)], second_view=images)
        assert out["pred"].shape == (2, 35, 64) and out["z_online"].shape == (2, 512)


def test_gmim_checkpoint_loads_with_nnunet_stock_loader(tmp_path):
    """`nnUNetv2_train -tr nnUNetTrainerViT -pretrained_weights <GMIM checkpoint>` uses this loader."""
    cm = configuration((16, 24, 16))
    gmim = nnUNetTrainerGMIMPretrain.build_network_architecture(None, cm, 1, 3, False)
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": gmim.state_dict()}, path)
    vit = nnUNetTrainerViT.build_network_architecture(None, cm, 1, 3, False)
    assert isinstance(vit, ViTSegmentationNetwork)
    load_pretrained_weights(vit, str(path))
    assert torch.equal(vit.encoder.blocks[3].mlp.fc1.weight, gmim.encoder.blocks[3].mlp.fc1.weight)
    assert torch.equal(vit.encoder.pos_embed, gmim.encoder.pos_embed)
    extra = set(gmim.state_dict()) - set(vit.state_dict())
    assert {k.split(".")[0] for k in extra} == {"mask_token", "mae_decoder", "projector_online", "projector_target"}


# ----- the step hooks, on a real trainer instance (network built by hand: no preprocessed data needed) ----------
@pytest.fixture
def trainer(tmp_path, monkeypatch):
    t = tiny_trainer(nnUNetTrainerGMIMPretrain, tmp_path, monkeypatch)
    t.num_input_channels = 1
    torch.manual_seed(0)
    t.network = t.build_network_architecture(t.plans_manager, t.configuration_manager, 1,
                                             t.label_manager.num_segmentation_heads, False)
    return t


def test_masks_grid_then_cumulative_remasks(trainer):
    trainer.hierarchical_probability = 1.0
    g = torch.Generator().manual_seed(1)
    mask, remasks = trainer.gmim_masks(tiny_images(), g)
    assert [b for b, _ in remasks] == [2, 5, 8]
    previous = mask
    for (_, m), ratio in zip(remasks, [0.25, 0.125, 0.0625]):
        assert torch.all(m >= previous)  # supersets
        added = (m - previous).sum(1)
        assert torch.equal(added, torch.floor((1 - previous).sum(1) * ratio + 0.5))
        previous = m


class _DepthFour(nnUNetTrainerGMIMPretrain):
    """A custom size through vit_dimensions(), as the demo and the tests build small networks."""

    @classmethod
    def vit_dimensions(cls):
        return {"embed_dim": 48, "depth": 4, "num_heads": 4}


def test_metadata_names_the_blocks_the_masks_are_applied_after(tmp_path, monkeypatch):
    t = tiny_trainer(_DepthFour, tmp_path, monkeypatch)
    t.initialize()
    assert len(t.network.encoder.blocks) == 4
    _, remasks = t.gmim_masks(tiny_images(), torch.Generator().manual_seed(1))
    applied = [block for block, _ in remasks]
    assert t.masking_metadata()["remask_after_blocks"] == applied == [0, 1, 2]


def test_training_loss_adds_the_siamese_term_and_reaches_every_trainable_parameter(trainer):
    trainer.network.train()
    data = tiny_images()
    terms = trainer.training_losses(data)
    loss, reconstruction, correlation = terms["loss"], terms["reconstruction"], terms["cross_correlation"]
    assert torch.isfinite(loss) and not reconstruction.requires_grad and not correlation.requires_grad
    torch.testing.assert_close(loss.detach(), reconstruction + 0.005 * correlation)
    loss.backward()
    missing = [n for n, p in trainer.network.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


def test_validation_loss_is_reconstruction_only_and_reproducible(trainer):
    trainer.network.eval()
    data = tiny_images()
    with torch.no_grad():
        a = trainer.compute_loss(data, generator=trainer.validation_generator(0))
        b = trainer.compute_loss(data, generator=trainer.validation_generator(0))
        c = trainer.compute_loss(data, generator=trainer.validation_generator(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(trainer.loss_terms(data, generator=trainer.validation_generator(0))) == {"loss"}


def test_metadata_and_encoder_fits_finetuning(trainer):
    meta = trainer.transfer_metadata().masking
    assert meta == {"type": "gmim", "base_ratio": 0.5, "spread": 0.3, "hierarchical_probability": 0.3,
                    "hierarchical_ratios": [0.25, 0.125, 0.0625], "remask_after_blocks": [2, 5, 8],
                    "siamese_weight": 0.005, "off_diagonal_weight": 0.005, "normalize_targets": False}
    trainer.encoder_in_finetuning_network()  # raises if the GMIM encoder does not load into the fine-tuning net


def test_hierarchical_decay_is_the_ratio_factor_per_level(trainer):
    """reference.md: `hierarchical_decay` is GMIM's --hierarchical_masking, the re-mask ratio factor per level."""
    default = trainer.hierarchical_decay
    try:
        trainer.hierarchical_decay = 0.8
        assert trainer.remask_ratios() == pytest.approx([0.4, 0.32, 0.256])
    finally:
        trainer.hierarchical_decay = default


def test_intensity_view_is_seeded_per_sample_and_keeps_shape():
    x = tiny_images(batch=8)
    a = intensity_view(x, generator=torch.Generator().manual_seed(3))
    b = intensity_view(x, generator=torch.Generator().manual_seed(3))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert torch.isfinite(a).all()
    changed = (a - x).flatten(1).abs().amax(1) > 0
    assert changed.any()  # with 8 samples, P(all untouched) = (0.3 * 0.6 * 0.5)^8
    half = intensity_view(x.to(torch.bfloat16), generator=torch.Generator().manual_seed(3))
    assert half.dtype == torch.bfloat16
