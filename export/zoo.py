"""The default edge-student zoo: the architectures ``compress pick`` compares and the export tests cover.

One representative per family a deployment usually chooses from (classic ResNets, depthwise
MobileNets/EfficientNet, RegNet, ConvNeXt, the re-parameterised FastViT, MobileViT, a plain ViT,
GhostNet). Every name is a timm architecture; any other timm name works as a student too, this is
only the default candidate set.
"""

from __future__ import annotations

EDGE_STUDENTS: tuple[str, ...] = (
    "resnet18",
    "resnet50",
    "mobilenetv3_large_100",
    "mobilenetv4_conv_small",
    "efficientnet_b0",
    "regnety_008",
    "convnext_atto",
    "fastvit_t8",
    "mobilevitv2_050",
    "vit_tiny_patch16_224",
    "ghostnet_100",
)
