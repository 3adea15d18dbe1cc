"""fit_to_state_dict: a network built at full width takes the shapes of a narrower one's weights."""

from __future__ import annotations

import pytest
import torch
from timm.layers import BatchNormAct2d
from torch import nn

from compressor.errors import CompressorError
from compressor.models.resize import fit_to_state_dict


def _net(width: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), BatchNormAct2d(width, act_layer=nn.ReLU),
        nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False), nn.BatchNorm2d(width),  # depthwise
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, out), nn.LayerNorm(out))


def test_a_wide_net_takes_a_narrow_nets_weights() -> None:
    torch.manual_seed(0)
    narrow, wide = _net(5, 3).eval(), _net(8, 4).eval()
    with torch.no_grad():  # non-default statistics, so a buffer that failed to land would change the output
        for bn in (narrow[1], narrow[3]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    fit_to_state_dict(wide, narrow.state_dict())
    wide.load_state_dict(narrow.state_dict(), strict=True)
    assert type(wide[1]) is BatchNormAct2d and wide[1].num_features == 5 and isinstance(wide[1].act, nn.ReLU)
    assert (wide[2].in_channels, wide[2].out_channels, wide[2].groups) == (5, 5, 5)  # still depthwise
    assert (wide[6].in_features, wide[6].out_features, wide[7].normalized_shape) == (5, 3, (3,))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(wide(x), narrow(x), rtol=0, atol=0)


def test_matching_shapes_are_left_alone() -> None:
    net = _net(4, 2)
    weight = net[0].weight
    fit_to_state_dict(net, _net(4, 2).state_dict())
    assert net[0].weight is weight


def test_a_layer_it_cannot_resize_is_named() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.GroupNorm(2, 8))
    small = nn.Sequential(nn.Conv2d(3, 4, 1), nn.GroupNorm(2, 4))
    with pytest.raises(CompressorError, match=r"layer '1' \(GroupNorm\).*\(4,\) in the weights but \(8,\)"):
        fit_to_state_dict(net, small.state_dict())
