"""PrimusV3 MAE network: nnU-Net's PrimusV3 keys, an encoder that sees only visible tokens, rope of kept tokens."""

from types import SimpleNamespace

import pytest
import torch
from einops import rearrange
from nnunetv2.run.load_pretrained_weights import load_pretrained_weights
from nnunetv2.training.nnUNetTrainer.primus.primus_trainers import nnUNet_PrimusV3S_Trainer

from nnunet_mae.architectures.primus_mae import PrimusV3MAE, PrimusV3SMAE
from nnunet_mae.architectures.tokens import patchify
from nnunet_mae.losses.reconstruction import masked_reconstruction_loss
from nnunet_mae.masking.random_masking import random_token_masking

SHAPE = (16, 24, 16)  # token grid 2 x 3 x 2


@pytest.fixture
def net():
    torch.manual_seed(0)
    return PrimusV3MAE(1, 96, num_classes=3, eva_depth=2, eva_numheads=4, patch_embed_size=(8, 8, 8),
                       input_shape=SHAPE, ch_per_level=(8, 16, 32, 64), mae_decoder_dim=32, mae_decoder_depth=1,
                       mae_decoder_heads=4).eval()


def test_state_dict_is_nnunet_primusv3s_plus_mae_decoder_and_loads_with_nnunet_strict_loader(tmp_path):
    ours = PrimusV3SMAE(1, 3, patch_embed_size=(8, 8, 8), input_shape=(16, 16, 16), drop_path_rate=0.0,
                        scale_attn_inner=True, init_values=0.1)
    theirs = nnUNet_PrimusV3S_Trainer.build_network_architecture(None, SimpleNamespace(patch_size=(16, 16, 16)), 1, 3)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert set(theirs_sd) <= set(ours_sd)
    assert all(ours_sd[k].shape == v.shape for k, v in theirs_sd.items())
    assert {k.split(".")[0] for k in set(ours_sd) - set(theirs_sd)} == {"mae_decoder"}
    torch.save({"network_weights": ours_sd}, tmp_path / "pretrained.pth")
    load_pretrained_weights(theirs, str(tmp_path / "pretrained.pth"))  # asserts every key but .seg_layers.
    stem = "down_projection.stem.blocks.0.conv1.conv.weight"
    assert torch.equal(theirs.state_dict()[stem], ours_sd[stem])


def test_encoder_sees_only_the_visible_tokens(net):
    x = torch.randn(2, 1, *SHAPE)
    ids_keep, _, mask = random_token_masking(2, 12, 0.75, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        latent = net.encode_visible(x, ids_keep, mask)
        hidden = x.clone()
        voxels = patchify(hidden, (8, 8, 8))  # (B, L, 512)
        voxels[mask.bool()] = torch.randn_like(voxels[mask.bool()]) * 10  # change every masked token's voxels
        hidden = rearrange(voxels, "b (g0 g1 g2) (t0 t1 t2 c) -> b c (g0 t0) (g1 t1) (g2 t2)", g0=2, g1=3, g2=2,
                           t0=8, t1=8, t2=8)
        assert torch.equal(net.encode_visible(hidden, ids_keep, mask), latent)
        seen = x.clone()
        seen[0, 0, :8, :8, :8] += 1.0  # token 0 of sample 0: visible or not
        changed = not torch.equal(net.encode_visible(seen, ids_keep, mask)[0], latent[0])
        assert changed == (mask[0, 0] == 0).item()


def test_kept_tokens_carry_their_own_rope_and_position(net):
    """All tokens kept, in grid order: DNA's own Eva forward. Shuffled: the same latents, shuffled (attention
    is order-free, so only per-token positions can make the difference)."""
    x = torch.randn(2, 1, *SHAPE)
    everything, none = torch.arange(12).expand(2, 12), torch.zeros(2, 12)
    with torch.no_grad():
        ours = net.encode_visible(x, everything, none)
        reference, _ = net.eva(rearrange(net.down_projection(x), "b d g0 g1 g2 -> b (g0 g1 g2) d"))
        torch.testing.assert_close(ours, reference)
        order = torch.stack([torch.randperm(12, generator=torch.Generator().manual_seed(s)) for s in (3, 4)])
        shuffled = net.encode_visible(x, order, none)
        torch.testing.assert_close(shuffled, torch.gather(reference, 1, order[..., None].expand(-1, -1, 96)))


def test_loss_reaches_every_trainable_parameter_and_not_the_carried_head(net):
    net.train()
    x = torch.randn(2, 1, *SHAPE)
    ids_keep, ids_restore, mask = random_token_masking(2, 12, 0.75)
    pred = net(x, ids_keep, ids_restore, mask)
    assert pred.shape == (2, 12, 512)
    masked_reconstruction_loss(pred, patchify(x, (8, 8, 8)), mask, False).backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert all(not p.requires_grad for p in net.up_projection.parameters())
