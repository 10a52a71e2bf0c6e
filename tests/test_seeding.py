"""Seeding pieces: job seeds, the generators, torch's flags and the seeded worker processes."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from panorama_pdac.nnunet.seeding import job_seed, seed_everything, seeded_augmenter, set_torch_determinism


def test_job_seeds_are_stable_distinct_and_in_range():
    assert job_seed(2, "stage2", "ce", 0, 1) == job_seed(2, "stage2", "ce", 0, 1)
    seeds = {job_seed(base, "stage2", v, f, s) for base in (1, 2) for v in ("ce", "tversky") for f in range(5)
             for s in (1, 2, 3)}
    assert len(seeds) == 2 * 2 * 5 * 3
    assert all(0 <= s < 2**31 for s in seeds)
    # the same in another python process (python's own str hash is salted per process)
    code = "from panorama_pdac.nnunet.seeding import job_seed; print(job_seed(1, 'stage1', 0))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "123"})
    assert int(other.stdout) == job_seed(1, "stage1", 0)


def test_seed_everything_fixes_python_numpy_and_torch():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed_everything(5)
    first = draw()
    seed_everything(5)
    assert draw() == first
    seed_everything(6)
    assert draw() != first


@pytest.fixture
def restore_torch_flags():
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:]


def test_torch_flags(restore_torch_flags):
    set_torch_determinism(True)
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    set_torch_determinism(False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.benchmark


class _Draws:
    """A data loader in batchgenerators' shape whose batches are draws from the three global generators."""

    thread_id = 0

    def set_thread_id(self, thread_id):
        self.thread_id = thread_id

    def __iter__(self):
        return self

    def __next__(self):
        return {"worker": self.thread_id, "numpy": np.random.rand(), "torch": torch.rand(1).item(),
                "python": random.random()}


def _batches(n: int, seed: int) -> list[dict]:
    augmenter = seeded_augmenter(_Draws(), workers=2, seed=seed, pin_memory=False)
    try:
        return [next(augmenter) for _ in range(n)]
    finally:
        augmenter._finish()


def test_seeded_workers_repeat_their_batches_in_order_and_draw_independently():
    first = _batches(6, seed=3)
    assert [b["worker"] for b in first] == [0, 1] * 3  # round robin: the order does not depend on timing
    assert _batches(6, seed=3) == first
    assert _batches(6, seed=4) != first
    # each worker seeds every generator with its own seed (forked workers would otherwise share torch's
    # and python's streams, and augment in lockstep)
    for generator in ("numpy", "torch", "python"):
        assert first[0][generator] != first[1][generator]
