import pytest

from nnunet_mae.architectures import MAEPretrainingNetwork, ViTSegmentationNetwork
from nnunet_mae.training.param_groups import build_param_groups

TINY = dict(input_channels=1, num_classes=2, input_shape=(16, 16, 16), embed_dim=48, depth=4, num_heads=4)


def _group_of(groups, param):
    return next(g for g in groups if any(p is param for p in g["params"]))


def test_no_weight_decay_on_biases_norms_and_position_embedding():
    net = ViTSegmentationNetwork(**TINY)
    groups = build_param_groups(net, weight_decay=0.05)
    assert _group_of(groups, net.encoder.pos_embed)["weight_decay"] == 0.0
    assert _group_of(groups, net.encoder.blocks[0].norm1.weight)["weight_decay"] == 0.0
    assert _group_of(groups, net.encoder.blocks[0].attn.qkv.bias)["weight_decay"] == 0.0
    assert _group_of(groups, net.encoder.blocks[0].attn.qkv.weight)["weight_decay"] == 0.05
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_layer_decay_scales_shallower_layers_less():
    net = ViTSegmentationNetwork(**TINY)
    groups = build_param_groups(net, weight_decay=0.05, layer_decay=0.75)
    scale = lambda p: _group_of(groups, p)["lr_scale"]  # noqa: E731
    assert scale(net.decoder.seg_layers.weight) == 1.0
    assert scale(net.encoder.blocks[3].mlp.fc1.weight) == pytest.approx(0.75)
    assert scale(net.encoder.blocks[0].mlp.fc1.weight) == pytest.approx(0.75 ** 4)
    assert scale(net.encoder.patch_embed.weight) == pytest.approx(0.75 ** 5)
    assert groups[0]["lr_scale"] == 1.0  # the group nnU-Net logs as the learning rate


def test_frozen_parameters_are_left_out():
    net = MAEPretrainingNetwork(**TINY)
    params = [p for g in build_param_groups(net, weight_decay=0.05) for p in g["params"]]
    assert not any(p is q for p in params for q in net.decoder.parameters())
