"""Comparing trained checkpoints tensor by tensor (the reproducibility tests of both stages)."""

from __future__ import annotations

import torch


def network_weights(checkpoint) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["network_weights"]


def differing_tensors(checkpoint_a, checkpoint_b) -> list[str]:
    """Names of the network tensors that are not bit-identical (every tensor, buffers included)."""
    a, b = network_weights(checkpoint_a), network_weights(checkpoint_b)
    assert a.keys() == b.keys() and a
    return [k for k in a if not torch.equal(a[k], b[k])]
