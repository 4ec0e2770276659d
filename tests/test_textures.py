"""inrd.textures: the data splits of inrd-small and the seeded random crops."""

import pytest
import torch

from inrd.textures import random_crops, region, texture_images


def test_data_splits_are_disjoint_and_cover_the_textures():
    x = texture_images()
    assert x.shape == (3, 256, 256) and 0 <= x.min() and x.max() <= 1
    tr, ref, floor = region("train"), region("ref"), region("floor")
    assert tr.shape == (3, 256, 192) and ref.shape == floor.shape == (3, 128, 64)
    # train | held-out columns, held-out = ref (top) | floor (bottom): together they are the image
    assert torch.equal(torch.cat([tr, torch.cat([ref, floor], 1)], 2), x)
    with pytest.raises(ValueError, match="split"):
        region("test")


def test_random_crops_are_seeded_crops_of_the_region():
    im = torch.arange(3 * 20 * 30, dtype=torch.float32).reshape(3, 20, 30)
    c = random_crops(im, 5, 8, torch.Generator().manual_seed(0))
    assert c.shape == (5, 1, 8, 8)
    assert torch.equal(c, random_crops(im, 5, 8, torch.Generator().manual_seed(0)))
    for crop in c[:, 0]:  # each is a contiguous block: value = k*600 + i*30 + j
        v0 = int(crop[0, 0])
        k, i, j = v0 // 600, (v0 % 600) // 30, v0 % 30
        assert torch.equal(crop, im[k, i : i + 8, j : j + 8])
    with pytest.raises(ValueError, match="exceeds"):
        random_crops(im, 1, 21, torch.Generator())
