"""Tests of the on-device batch loader against torch's own samplers."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler, TensorDataset

from initbench.device_loader import DeviceBatchLoader


def _loader(count=103, batch_size=10, **kwargs) -> DeviceBatchLoader:
    images = torch.arange(count, dtype=torch.float32).reshape(count, 1, 1, 1)
    return DeviceBatchLoader(images, torch.arange(count), batch_size, **kwargs)


def _epoch_labels(loader: DeviceBatchLoader) -> list[int]:
    return [int(label) for _, labels in loader for label in labels]


def test_epoch_covers_every_sample_once():
    loader = _loader(shuffle=True, seed=3)

    labels = _epoch_labels(loader)

    assert sorted(labels) == list(range(103))


def test_len_counts_the_partial_batch():
    assert len(_loader()) == 11
    assert len(_loader(drop_last=True)) == 10


def test_unshuffled_order_is_sequential():
    assert _epoch_labels(_loader()) == list(range(103))


def test_images_and_labels_stay_paired():
    for images, labels in _loader(shuffle=True):
        assert torch.equal(images.flatten().long(), labels)


def test_epochs_draw_different_orders():
    loader = _loader(shuffle=True, seed=0)

    first = _epoch_labels(loader)
    second = _epoch_labels(loader)

    assert first != second
    assert sorted(first) == sorted(second)


def test_epoch_advances_without_exhausting_the_iterator():
    loader = _loader(shuffle=True, seed=0)

    # Lightning takes len(loader) batches and never asks for the next one.
    first = [int(label) for _, (_, labels) in zip(range(len(loader)), loader) for label in labels]
    second = [int(label) for _, (_, labels) in zip(range(len(loader)), loader) for label in labels]

    assert first != second
    assert loader.state_dict() == {"epoch": 2, "batch": 0, "seed": 0}


def test_same_seed_gives_same_order():
    assert _epoch_labels(_loader(shuffle=True, seed=7)) == _epoch_labels(_loader(shuffle=True, seed=7))


@pytest.mark.parametrize("num_replicas", [2, 3, 4])
def test_shards_match_distributed_sampler(num_replicas):
    dataset = TensorDataset(torch.arange(103))
    for rank in range(num_replicas):
        sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=5)
        loader = _loader(shuffle=True, seed=5, num_replicas=num_replicas, rank=rank)
        for epoch in range(2):
            sampler.set_epoch(epoch)

            assert _epoch_labels(loader) == list(sampler), f"rank {rank}, epoch {epoch}"


def test_resumed_loader_continues_the_epoch():
    reference = _loader(shuffle=True, seed=1)
    _epoch_labels(reference)
    second_epoch = _epoch_labels(reference)

    interrupted = _loader(shuffle=True, seed=1)
    _epoch_labels(interrupted)
    iterator = iter(interrupted)
    drawn = [int(label) for _ in range(4) for label in next(iterator)[1]]
    state = interrupted.state_dict()

    resumed = _loader(shuffle=True, seed=1)
    resumed.load_state_dict(state)
    rest = _epoch_labels(resumed)

    assert drawn + rest == second_epoch
    assert resumed.epoch == 2


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        _loader(batch_size=0)
    with pytest.raises(ValueError, match="rank"):
        _loader(num_replicas=2, rank=2)
