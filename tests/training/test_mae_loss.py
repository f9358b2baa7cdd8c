"""The MAE trainer's loss: for the ViT on every token in training steps (visible ones included), the masked tokens
only in validation; the optional uniformity term; both recorded in the checkpoint's masking metadata."""

import torch

from nnunet_mae.losses.reconstruction import masked_reconstruction_loss
from nnunet_mae.losses.uniformity import token_uniformity_loss
from nnunet_mae.training.trainers import nnUNetTrainerMAEPretrain
from tests.training.tiny_trainer import tiny_images, tiny_trainer


def _trainer(tmp_path, monkeypatch):
    trainer = tiny_trainer(nnUNetTrainerMAEPretrain, tmp_path, monkeypatch)
    trainer.initialize()
    return trainer


def test_vit_trains_on_every_token_and_validates_on_the_masked_ones(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, monkeypatch)
    assert trainer.loss_on_visible is True and trainer.uniformity_weight == 0.0
    assert trainer.masking_metadata()["loss_on_visible"] is True
    data = tiny_images()
    with torch.no_grad():
        validation = trainer.compute_loss(data, generator=trainer.validation_generator(0))
        pred, target, mask = trainer.mask_and_reconstruct(data, trainer.validation_generator(0))
    assert torch.equal(validation, masked_reconstruction_loss(pred, target, mask))
    training = trainer.compute_loss(data, generator=trainer.validation_generator(0))  # grad enabled
    assert training.requires_grad
    assert torch.allclose(training.detach(), masked_reconstruction_loss(pred, target, torch.ones_like(mask)))
    assert not torch.allclose(training.detach(), validation)


def test_the_uniformity_term_reads_the_encoder_tokens(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, monkeypatch)
    trainer.loss_on_visible, trainer.uniformity_weight = False, 0.5
    data = tiny_images()
    with torch.no_grad():
        reconstruction = trainer.compute_loss(data, generator=trainer.validation_generator(0))
    tokens = []
    hook = trainer.network.encoder.norm.register_forward_hook(lambda m, i, o: tokens.append(o.detach()))
    total = trainer.compute_loss(data, generator=trainer.validation_generator(0))
    hook.remove()
    assert torch.allclose(total.detach(), reconstruction + 0.5 * token_uniformity_loss(tokens[0]), atol=1e-5)
    assert trainer.masking_metadata()["uniformity_weight"] == 0.5


def test_only_the_measured_backbone_changes_nnssls_loss_by_default():
    from nnunet_mae.backbones import BACKBONES

    defaults = {name: (getattr(f, "mae_loss_on_visible", False), getattr(f, "mae_uniformity_weight", 0.0))
                for name, f in BACKBONES.items()}
    assert defaults == {"vit": (True, 0.0), "primusv3": (False, 0.0), "cnn": (False, 0.0)}
