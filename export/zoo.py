"""The default edge-student zoo: the architectures ``compress pick`` compares and the export tests cover.

One representative per family a deployment usually chooses from (classic ResNets, depthwise
MobileNets/EfficientNet, RegNet, ConvNeXt, the re-parameterised FastViT, MobileViT, a plain ViT,
GhostNet). Every name is a timm architecture; any other timm name works as a student too, this is
only the default candidate set.
"""

from __future__ import annotations

# The zoo, and what `compress list students` shows for it without building a model (so it needs no torch):
# millions of parameters and GMACs of one 224 px image, classifier removed (create_timm_backbone),
# counted with torch.utils.flop_counter (MACs = FLOPs / 2). tests/cli/test_list_students.py recounts them.
EDGE_STUDENT_COSTS: dict[str, tuple[float, float]] = {
    "resnet18": (11.18, 1.81),
    "resnet50": (23.51, 4.09),
    "mobilenetv3_large_100": (4.20, 0.22),
    "mobilenetv4_conv_small": (2.49, 0.18),
    "efficientnet_b0": (4.01, 0.38),
    "regnety_008": (5.49, 0.80),
    "convnext_atto": (3.37, 0.55),
    "fastvit_t8": (3.26, 0.53),
    "mobilevitv2_050": (1.11, 0.36),
    "vit_tiny_patch16_224": (5.52, 1.07),
    "ghostnet_100": (3.90, 0.14),
}
EDGE_STUDENTS: tuple[str, ...] = tuple(EDGE_STUDENT_COSTS)  # the names, in the table's order
