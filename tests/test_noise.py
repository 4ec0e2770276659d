import math

import torch

from inrd.noise import _PARALLEL_ROW, PerSampleNoise, sample_seed


def test_per_sample_noise_is_standard_normal():
    z = PerSampleNoise(seed=0, batch=4)(1, torch.empty(4, 1, 64, 64))
    # 16384 N(0, 1) draws: the sample mean has std 1/128, the sample variance std sqrt(2/16384) ~ 0.011
    assert abs(z.mean().item()) < 4 / 128
    assert abs(z.var().item() - 1) < 4 * math.sqrt(2 / 16384)


def test_per_sample_noise_is_each_samples_own_stream():
    z = PerSampleNoise(seed=7, batch=2, first=5)(1, torch.empty(2, 3, 8, 8))
    g = torch.Generator().manual_seed(sample_seed(7, 6))
    assert torch.equal(z[1], torch.randn(3, 8, 8, generator=g))


def test_per_sample_noise_threaded_rows_are_the_same_streams():
    # rows of >= 2^16 values are filled by a thread pool: each must still be its own sample's stream
    shape = (3, 1, 256, 256)
    assert shape[1] * shape[2] * shape[3] >= _PARALLEL_ROW
    z = PerSampleNoise(seed=11, batch=3, first=2)(5, torch.empty(shape, dtype=torch.float64))
    assert z.dtype == torch.float64
    for i in range(3):
        g = torch.Generator().manual_seed(sample_seed(11, 2 + i))
        assert torch.equal(z[i], torch.randn(shape[1:], generator=g).double())


def test_per_sample_noise_threads_work_in_a_forked_child():
    # the thread pool is per process: a child forked after the parent used it must not hang
    import multiprocessing as mp

    shape = (2, 1, 256, 256)
    parent = PerSampleNoise(seed=3, batch=2)(1, torch.empty(shape))  # creates the parent's pool
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        child = pool.apply_async(_draw_in_child, (shape,)).get(timeout=60)
    assert torch.equal(torch.from_numpy(child), parent)


def _draw_in_child(shape):  # a numpy array goes back by pickle (a tensor would go by shared memory)
    return PerSampleNoise(seed=3, batch=2)(1, torch.empty(shape)).numpy()
