"""The stride-2 conv net that initbench trains: a plain ``nn.Module``, no Lightning."""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from torch import Tensor, nn


class StrideConvNet(nn.Sequential):
    """A conv net that halves the resolution at every layer and ends in global average pooling.

    With the defaults it is the net of the fast.ai "why sqrt(5)" lesson, with a
    10-class head::

        conv1  Conv2d(1, 8, 5, stride=2, padding=2)    relu1
        conv2  Conv2d(8, 16, 3, stride=2, padding=1)   relu2
        conv3  Conv2d(16, 32, 3, stride=2, padding=1)  relu3
        conv4  Conv2d(32, 10, 3, stride=2, padding=1)
        pool   AdaptiveAvgPool2d(1)                    flatten

    The layers are named children, so statistics and hooks can address them by
    name. The ReLUs are not in-place, so a hook on a conv receives the conv's own
    output. The layers keep PyTorch's default init; an init callback replaces it.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (8, 16, 32),
        num_classes: int = 10,
        kernel_sizes: Sequence[int] = (5, 3, 3, 3),
    ) -> None:
        widths = [in_channels, *channels, num_classes]
        if len(kernel_sizes) != len(widths) - 1:
            raise ValueError(
                f"model.kernel_sizes has {len(kernel_sizes)} entries but the net has {len(widths) - 1} conv layers"
            )

        layers: list[tuple[str, nn.Module]] = []
        for index, kernel_size in enumerate(kernel_sizes, start=1):
            conv = nn.Conv2d(widths[index - 1], widths[index], kernel_size, stride=2, padding=kernel_size // 2)
            layers.append((f"conv{index}", conv))
            if index < len(kernel_sizes):
                layers.append((f"relu{index}", nn.ReLU()))
        layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
        super().__init__(OrderedDict(layers))

    def forward(self, images: Tensor) -> Tensor:
        """Map (N, C, H, W) images to (N, num_classes) logits."""
        return super().forward(images)
