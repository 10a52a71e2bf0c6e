"""The stage-2 multi-task network: nnU-Net's planned U-Net plus a Feature Pyramid Network classification head
on the last encoder stages (METHOD.md §3).

nnU-Net's sliding window and mirroring add up whatever `network(x)` returns, so `forward` returns the
segmentation alone; the case-level logits of each window (and mirror) are collected on the side when asked.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from dynamic_network_architectures.building_blocks.helper import get_matching_convtransp
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

FPN_LEVELS = 3  # the head reads the last three encoder stages


# avg (published) and max pool the window's cells, then classify; "cell" classifies every cell and takes the
# most PDAC-like one (multiple-instance learning: a window is PDAC when any of its cells is).
POOLINGS = ("avg", "max", "cell")


class FPNClassificationHead(nn.Module):
    """Lateral 1x1 convolutions to a common width, top-down upsampling by transposed convolutions with the
    plan's stride between stages, fusion by addition, pooling over the window, fully connected classifier.

    `encoder_channels` and the features passed to `forward` run from the finest to the coarsest stage (the
    encoder's order); `strides[i]` is the plan's stride from stage i to stage i + 1 of those.

    Options (the plans' `classification_head` entry): `norm`: after each fusion, the encoder's normalisation,
    LeakyReLU and a 3x3 convolution (JSC's FPN block) instead of a bare LeakyReLU; `pooling`: "avg" (published)
    or "max" over the window's cells before the classifier, or "cell": the classifier scores each cell of the
    finest pyramid level and the window gets the logits of the cell with the largest PDAC margin; `hidden`: a
    hidden fully connected layer (the paper's FC-ReLU-FC; JSC: FC-LeakyReLU-Dropout-FC) with `dropout` before
    the last layer.
    """

    def __init__(self, encoder_channels: Sequence[int], strides: Sequence[Sequence[int] | int], width: int = 256,
                 hidden: int | None = None, n_classes: int = 2, conv_op: type[nn.Module] = nn.Conv3d,
                 norm_op: type[nn.Module] | None = None, pooling: str = "avg", dropout: float = 0.0):
        super().__init__()
        if len(strides) != len(encoder_channels) - 1:
            raise ValueError(f"{len(encoder_channels)} pyramid levels need {len(encoder_channels) - 1} strides, "
                             f"got {len(strides)}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not '{pooling}'")
        if pooling == "cell" and n_classes != 2:
            raise ValueError(f"cell pooling ranks cells by their PDAC margin: 2 classes, not {n_classes}")
        transposed_conv = get_matching_convtransp(conv_op=conv_op)
        self.lateral = nn.ModuleList(conv_op(c, width, kernel_size=1) for c in encoder_channels)
        self.upsample = nn.ModuleList(transposed_conv(width, width, kernel_size=s, stride=s) for s in strides)
        # Without a nonlinearity, lateral -> upsample -> add -> pool would collapse into one linear map of the
        # pooled stage features; with it, the top-down path can combine coarse context with finer detail.
        self.fuse = nn.ModuleList(
            nn.Sequential(norm_op(width, affine=True), nn.LeakyReLU(1e-2), conv_op(width, width, 3, padding=1))
            if norm_op is not None else nn.LeakyReLU(1e-2)
            for _ in strides)
        self.pooling = pooling
        self.classifier = (nn.Linear(width, n_classes) if hidden is None else
                           nn.Sequential(nn.Linear(width, hidden), nn.LeakyReLU(1e-2), nn.Dropout(dropout),
                                         nn.Linear(hidden, n_classes)))
        self.apply(InitWeights_He(1e-2))  # nnU-Net's initialisation for its LeakyReLU convolutions

    @classmethod
    def for_encoder(cls, encoder: nn.Module, width: int = 256, hidden: int | None = None, norm: bool = False,
                    pooling: str = "avg", dropout: float = 0.0) -> FPNClassificationHead:
        """Sized from a planned encoder (channels and strides of its last stages); `norm` uses the encoder's own
        normalisation (nnU-Net plans: instance norm)."""
        return cls(encoder.output_channels[-FPN_LEVELS:], encoder.strides[-(FPN_LEVELS - 1):], width=width,
                   hidden=hidden, conv_op=encoder.conv_op, norm_op=encoder.norm_op if norm else None,
                   pooling=pooling, dropout=dropout)

    @property
    def n_levels(self) -> int:
        return len(self.lateral)

    def pyramid(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The fused top-down map at the finest level (batch, width, *cell grid): what the pooling reads."""
        top = self.lateral[-1](features[-1])
        for level in reversed(range(self.n_levels - 1)):
            top = self.fuse[level](self.lateral[level](features[level]) + self.upsample[level](top))
        return top

    def forward(self, features: Sequence[torch.Tensor], cells: bool = False):
        """Window logits (batch, n_classes); with `cells` (cell pooling only), also every cell's PDAC margin
        (logit PDAC - logit non-PDAC; batch x the finest level's cell grid)."""
        if cells and self.pooling != "cell":
            raise ValueError(f"per-cell margins need cell pooling, not '{self.pooling}'")
        top = self.pyramid(features)
        if self.pooling == "avg":
            return self.classifier(top.flatten(2).mean(2))
        if self.pooling == "max":
            return self.classifier(top.flatten(2).amax(2))
        logits = self.classifier(top.movedim(1, -1))  # (batch, *cell grid, 2)
        margins = logits[..., 1] - logits[..., 0]
        chosen = margins.flatten(1).argmax(1)
        window = logits.flatten(1, -2)[torch.arange(len(logits), device=logits.device), chosen]
        return (window, margins) if cells else window


class MultiTaskUNet(nn.Module):
    """A planned nnU-Net U-Net (PlainConvUNet, ResidualEncoderUNet) with a classification head on its encoder.

    The U-Net's `encoder` and `decoder` become this module's own, so parameter names match the stock network
    (`encoder.*`, `decoder.*`, plus `head.*`) and nnU-Net's `network.decoder.deep_supervision = ...` still
    switches deep supervision.
    """

    def __init__(self, unet: nn.Module, head: FPNClassificationHead):
        super().__init__()
        self.encoder = unet.encoder
        self.decoder = unet.decoder
        self.head = head
        self._collected: list[torch.Tensor] | None = None

    @classmethod
    def from_unet(cls, unet: nn.Module, **head) -> MultiTaskUNet:
        """Attach an FPN head sized from the U-Net's encoder (`head`: FPNClassificationHead.for_encoder's options)."""
        return cls(unet, FPNClassificationHead.for_encoder(unet.encoder, **head))

    def forward_both(self, x: torch.Tensor, decode: bool = True, cells: bool = False):
        """Segmentation (a list under deep supervision; None without `decode`, which skips the decoder) and
        classification logits (batch, n_classes); with `cells`, the logits and the per-cell PDAC margins."""
        skips = self.encoder(x)
        return (self.decoder(skips) if decode else None), self.head(skips[-self.head.n_levels:], cells=cells)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Classification logits alone: skips the decoder, for training the head by itself."""
        return self.forward_both(x, decode=False)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self._collected is None:
            return self.decoder(self.encoder(x))
        seg, logits = self.forward_both(x)
        self._collected.append(logits.detach())
        return seg

    @contextlib.contextmanager
    def collecting(self) -> Iterator[list[torch.Tensor]]:
        """Within the block, every `forward` call appends its classification logits to the yielded list
        (one (batch, n_classes) tensor per call: per window and per mirror in nnU-Net's sliding window)."""
        self._collected = collected = []
        try:
            yield collected
        finally:
            self._collected = None
