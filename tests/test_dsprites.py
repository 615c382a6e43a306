"""paperlib.dsprites.DSprites: sizes, index <-> factors, determinism, and factors that move the sprite."""

import math

import numpy as np
import pytest
import torch

from paperlib.dsprites import DSprites


@pytest.fixture(scope="module")
def ds():
    return DSprites()


def centroid(image):
    rows, cols = torch.nonzero(image[0], as_tuple=True)
    return rows.float().mean().item(), cols.float().mean().item()


def test_sizes_and_length(ds):
    assert ds.factor_sizes == (3, 6, 40, 32, 32)
    assert ds.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert len(ds) == 737_280 == math.prod(ds.factor_sizes)
    assert ds.shapes == ("square", "ellipse", "heart")
    assert torch.allclose(ds.scales, torch.linspace(0.5, 1.0, 6, dtype=torch.float64))
    assert ds.orientations.min() == 0 and ds.orientations.max() < 2 * math.pi
    assert len(ds.orientations) == 40


def test_item_is_a_binary_64x64_image_with_its_factors(ds):
    image, factors = ds[123_456]
    assert image.shape == (1, 64, 64) and image.dtype == torch.float32
    assert set(image.unique().tolist()) <= {0.0, 1.0} and image.sum() > 0
    assert factors.dtype == torch.long and factors.shape == (5,)
    assert ds.index(factors) == 123_456


def test_index_matches_numpy_ravel_with_pos_y_fastest(ds):
    rng = np.random.default_rng(0)
    table = np.stack([rng.integers(0, n, 200) for n in ds.factor_sizes], axis=1)
    expected = np.ravel_multi_index(table.T, ds.factor_sizes)
    got = ds.index(torch.from_numpy(table).long())
    assert got.tolist() == expected.tolist()
    assert ds.index([0, 0, 0, 0, 1]) == 1 and ds.index([0, 0, 0, 1, 0]) == 32
    assert ds.index((2, 5, 39, 31, 31)) == len(ds) - 1


def test_index_and_factors_are_inverse(ds):
    indices = torch.randint(0, len(ds), (500,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(ds.index(ds.factors(indices)), indices)
    assert ds.factors(len(ds) - 1).tolist() == [2, 5, 39, 31, 31]


def test_rendering_is_deterministic_and_batch_independent(ds):
    table = ds.factors(torch.arange(0, len(ds), 30011))
    first, again = ds.render(table), ds.render(table, batch_size=17)
    assert torch.equal(first, again)
    assert torch.equal(ds[int(ds.index(table[5]))][0], first[5])
    assert torch.equal(DSprites().render(table), first)


def test_pos_x_moves_right_and_pos_y_moves_down(ds):
    base = [0, 3, 0, 0, 16]
    (r0, c0), (r1, c1) = (centroid(ds.render(base)[0]),
                          centroid(ds.render([0, 3, 0, 31, 16])[0]))
    assert c1 - c0 > 30 and abs(r1 - r0) < 1
    (r0, c0), (r1, c1) = (centroid(ds.render([0, 3, 0, 16, 0])[0]),
                          centroid(ds.render([0, 3, 0, 16, 31])[0]))
    assert r1 - r0 > 30 and abs(c1 - c0) < 1
    # the positions span most of the canvas: centres from 0.2 to 0.8 of the width
    left = centroid(ds.render([0, 3, 0, 0, 16])[0])[1]
    right = centroid(ds.render([0, 3, 0, 31, 16])[0])[1]
    assert left < 0.2 * 64 and right > 0.8 * 64 - 1


def test_every_sprite_fits_on_the_canvas(ds):
    # the largest sprites at the extreme positions, every orientation: nothing is cut off
    table = torch.cartesian_prod(torch.arange(3), torch.tensor([5]), torch.arange(40),
                                 torch.tensor([0, 31]), torch.tensor([0, 31]))
    images = ds.render(table)[:, 0]
    border = torch.cat([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], dim=1)
    assert border.sum() == 0


def test_scale_grows_the_area_and_orientation_keeps_it(ds):
    areas = ds.render(torch.tensor([[1, s, 0, 16, 16] for s in range(6)])).sum((1, 2, 3))
    assert (areas.diff() > 0).all()
    # area ~ scale^2: scale 1 against scale 0.5 gives about 4 times the pixels
    assert 3.3 < areas[-1] / areas[0] < 4.7
    turned = ds.render(torch.tensor([[2, 5, k, 16, 16] for k in range(40)])).sum((1, 2, 3))
    assert (turned.max() - turned.min()) / turned.mean() < 0.1


def test_shapes_differ_and_orientation_turns_the_sprite(ds):
    images = ds.render(torch.tensor([[k, 5, 0, 16, 16] for k in range(3)]))
    assert all(not torch.equal(images[a], images[b]) for a, b in [(0, 1), (0, 2), (1, 2)])
    # the ellipse is twice as wide as it is tall at orientation 0, and upright after a quarter turn
    flat, upright = ds.render(torch.tensor([[1, 5, 0, 16, 16], [1, 5, 10, 16, 16]]))[:, 0]
    width = lambda im: int(im.any(0).sum())
    height = lambda im: int(im.any(1).sum())
    assert width(flat) > 1.7 * height(flat) and height(upright) > 1.7 * width(upright)
    # the heart points down: more ink in its upper half
    heart = ds.render([2, 5, 0, 16, 16])[0, 0]
    rows = torch.nonzero(heart)[:, 0].float()
    middle = (rows.min() + rows.max()) / 2
    assert heart[: int(middle)].sum() > heart[int(middle) + 1:].sum()


def test_half_resolution_draws_the_same_sprite(ds):
    small = DSprites(32)
    table = torch.tensor([[2, 4, 7, 10, 20]])
    big = ds.render(table)
    pooled = torch.nn.functional.avg_pool2d(big, 2)
    assert (pooled.round() - small.render(table)).abs().mean() < 0.03
    assert small.render(table).shape == (1, 1, 32, 32)


def test_render_speed(ds):
    table = ds.factors(torch.randint(0, len(ds), (512,), generator=torch.Generator().manual_seed(0)))
    import time
    start = time.perf_counter()
    ds.render(table)
    assert 512 / (time.perf_counter() - start) > 100  # loose: a loaded CI machine still passes


