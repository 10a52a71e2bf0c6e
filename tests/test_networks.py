"""The FPN classification head and the multi-task wrapper around nnU-Net's planned U-Nets."""

from __future__ import annotations

import pytest
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from panorama_pdac.networks import FPNClassificationHead, MultiTaskUNet

PLAIN = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESIDUAL = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"


def _unet(arch: str, strides, deep_supervision: bool):
    """A tiny network built the way nnU-Net builds it from plans."""
    n = len(strides)
    blocks = "n_conv_per_stage" if arch == PLAIN else "n_blocks_per_stage"
    kwargs = {"n_stages": n, "features_per_stage": [4, 8, 16, 16][:n], "conv_op": "torch.nn.modules.conv.Conv3d",
              "kernel_sizes": [[3, 3, 3]] * n, "strides": strides, blocks: [1] * n,
              "n_conv_per_stage_decoder": [1] * (n - 1), "conv_bias": True,
              "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
              "norm_op_kwargs": {"eps": 1e-5, "affine": True},
              "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
              "nonlin_kwargs": {"inplace": True}}
    return get_network_from_plans(arch, kwargs, ["conv_op", "norm_op", "dropout_op", "nonlin"], 1, 7,
                                  deep_supervision=deep_supervision)


@pytest.mark.parametrize("strides", [[[1, 2, 2], [2, 2, 2]], [[2, 2, 2], [2, 2, 2]]])
@pytest.mark.parametrize("hidden", [None, 16])
def test_fpn_head_gives_two_logits_per_sample(strides, hidden):
    head = FPNClassificationHead([8, 16, 32], strides, width=12, hidden=hidden)
    finest = (4, 8, 8)
    middle = tuple(s // t for s, t in zip(finest, strides[0]))
    coarsest = tuple(s // t for s, t in zip(middle, strides[1]))
    features = [torch.randn(3, c, *shape) for c, shape in zip([8, 16, 32], [finest, middle, coarsest])]
    logits = head(features)
    assert logits.shape == (3, 2)
    logits.sum().backward()
    assert all(p.grad is not None for p in head.parameters())  # every level contributes


@pytest.mark.parametrize("pooling", ["avg", "max", "cell"])
def test_each_pooling_classifies_the_window_as_it_says(pooling):
    """avg / max pool the pyramid's cells before the classifier; cell scores every cell and the window takes the
    logits of the cell with the largest PDAC margin (a window is PDAC when any of its cells is)."""
    torch.manual_seed(0)
    head = FPNClassificationHead([8, 16, 32], [[2, 2, 2], [2, 2, 2]], width=6, pooling=pooling)
    features = [torch.randn(2, c, *[n] * 3) for c, n in zip([8, 16, 32], [8, 4, 2])]
    with torch.no_grad():
        cells = head.pyramid(features).flatten(2).transpose(1, 2)  # (batch, cells, width)
        rules = {"avg": head.classifier(cells.mean(1)), "max": head.classifier(cells.amax(1)),
                 "cell": torch.stack([c[(c[:, 1] - c[:, 0]).argmax()] for c in head.classifier(cells)])}
        assert torch.allclose(head(features), rules[pooling], atol=1e-6)
        # the three rules differ on the same features
        assert not any(torch.allclose(rules[pooling], v) for k, v in rules.items() if k != pooling)


def test_cell_pooling_gives_the_gradient_to_the_chosen_cell_alone():
    head = FPNClassificationHead([4, 4, 4], [[1, 1, 1], [1, 1, 1]], width=4, pooling="cell")
    features = [torch.randn(1, 4, 2, 2, 2, requires_grad=True) for _ in range(3)]
    head(features)[0, 1].backward()
    # every cell of the finest level feeds its own cell only (lateral 1x1, stride-1 upsampling): one gets gradient
    assert int((features[0].grad.abs().sum(1) > 0).sum()) == 1


def test_cell_pooling_gives_every_cells_margin_when_asked():
    head = FPNClassificationHead([8, 16, 32], [[2, 2, 2], [2, 2, 2]], width=6, pooling="cell")
    features = [torch.randn(2, c, *[n] * 3) for c, n in zip([8, 16, 32], [8, 4, 2])]
    window, margins = head(features, cells=True)
    assert margins.shape == (2, 8, 8, 8)  # the finest level's cell grid
    assert torch.equal(window, head(features))
    assert torch.allclose(window[:, 1] - window[:, 0], margins.flatten(1).amax(1))
    with pytest.raises(ValueError, match="need cell pooling"):
        FPNClassificationHead([8, 16, 32], [[2, 2, 2], [2, 2, 2]], width=6)(features, cells=True)


def test_cell_pooling_needs_two_classes():
    with pytest.raises(ValueError, match="2 classes"):
        FPNClassificationHead([8, 16, 32], [[2, 2, 2], [2, 2, 2]], n_classes=3, pooling="cell")


def test_fpn_head_needs_one_stride_between_each_pair_of_levels():
    with pytest.raises(ValueError, match="3 pyramid levels need 2 strides"):
        FPNClassificationHead([8, 16, 32], [[2, 2, 2]])


@pytest.mark.parametrize("arch", [PLAIN, RESIDUAL])
@pytest.mark.parametrize("strides", [[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
                                     [[1, 1, 1], [2, 2, 2], [2, 2, 2]]])
def test_multitask_unet_wraps_plain_and_residual_unets(arch, strides):
    unet = _unet(arch, strides, deep_supervision=True)
    stock_keys = set(unet.state_dict())
    net = MultiTaskUNet.from_unet(unet, width=8)
    # the stock names survive, so stock tools and nnU-Net's deep-supervision switch find what they expect
    assert {k for k in net.state_dict() if not k.startswith("head.")} == stock_keys
    # the head reads the last three stages and upsamples with the plan's strides between them
    assert [tuple(u.stride) for u in net.head.upsample] == [tuple(s) for s in strides[-2:]]
    x = torch.randn(2, 1, 8, 16, 16)

    seg, logits = net.forward_both(x)
    assert isinstance(seg, list) and seg[0].shape == (2, 7, 8, 16, 16)
    assert logits.shape == (2, 2)
    assert torch.equal(net.classify(x), logits)

    net.decoder.deep_supervision = False  # what nnUNetTrainer.set_deep_supervision_enabled does
    out = net(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 7, 8, 16, 16)
    assert torch.equal(out, seg[0])


def test_forward_returns_segmentation_and_collects_logits_only_when_asked():
    net = MultiTaskUNet.from_unet(_unet(PLAIN, [[1, 1, 1], [2, 2, 2], [2, 2, 2]], deep_supervision=False), width=8)
    net.eval()
    x = torch.randn(1, 1, 8, 16, 16)
    with torch.no_grad():
        seg, logits = net.forward_both(x)
        with net.collecting() as collected:
            first = net(x)
            net(torch.flip(x, (2,)))
        outside = net(x)
    assert torch.equal(first, seg) and torch.equal(outside, seg)
    assert len(collected) == 2 and torch.equal(collected[0], logits)
    assert not torch.equal(collected[1], logits)  # the mirrored input gave its own logits
