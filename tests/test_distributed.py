"""Scale-out sampling (inrd.distributed, `inrd sample-many`): the same images on one or several processes."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import inrd
from inrd import schedules
from inrd.cli import main
from inrd.denoisers import GaussianDenoiser
from inrd.distributed import batches, rank_batches, sample_distributed

SIGMAS = schedules.geometric(12, 0.01, 2.0)


def test_batches_cover_every_index_once_round_robin():
    assert batches(7, 2) == [range(0, 2), range(2, 4), range(4, 6), range(6, 7)]
    for n, b, w in [(7, 2, 2), (10, 3, 4), (5, 8, 3), (64, 16, 8)]:
        parts = [rank_batches(n, b, r, w) for r in range(w)]
        flat = sorted(i for p in parts for idx in p for i in idx)
        assert flat == list(range(n))
        counts = [len(p) for p in parts]
        assert max(counts) - min(counts) <= 1  # balanced to one batch
    assert rank_batches(7, 2, 1, 2) == [range(2, 4), range(6, 7)]
    for bad in [(0, 2), (3, 0), (2.5, 1)]:
        with pytest.raises(ValueError, match="positive integer"):
            batches(*bad)


def test_one_process_equals_plain_sampling(gaussian_law):
    """Sample i depends on (seed, i) only: batches of 2 with first_index == one batch of 7 (this exact
    denoiser is batch-independent bit for bit, see test_sampler.test_batch_size_invariance)."""
    mean, cov = gaussian_law(shape=(1, 4, 4))
    D = GaussianDenoiser(mean, cov)
    seen = []
    x = sample_distributed(D, SIGMAS, n=7, shape=(1, 4, 4), batch=2, seed=5, init_std=0.3, on_batch=lambda idx, v: seen.append(idx))
    assert seen == batches(7, 2)
    assert torch.equal(x, inrd.sample(D, SIGMAS, shape=(7, 1, 4, 4), seed=5, init_std=0.3))
    assert not torch.equal(x, sample_distributed(D, SIGMAS, n=7, shape=(1, 4, 4), batch=2, seed=6, init_std=0.3))


def test_init_per_sample_skip_and_errors(gaussian_law):
    mean, cov = gaussian_law(shape=(1, 4, 4))
    D = GaussianDenoiser(mean, cov)
    starts = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    x = sample_distributed(D, SIGMAS, "ind", n=5, shape=(1, 4, 4), batch=2, seed=1, init=starts)
    assert torch.equal(x, inrd.sample(D, SIGMAS, "ind", init=starts, seed=1))
    done = []
    out = sample_distributed(D, SIGMAS, n=5, shape=(1, 4, 4), batch=2, gather=False, skip=lambda idx: idx.start == 2,
                             on_batch=lambda idx, v: done.append(idx))
    assert out is None and done == [range(0, 2), range(4, 5)]
    with pytest.raises(ValueError, match="first_index"):
        sample_distributed(D, SIGMAS, n=2, shape=(1, 4, 4), first_index=3)
    with pytest.raises(ValueError, match="gather=False"):
        sample_distributed(D, SIGMAS, n=2, shape=(1, 4, 4), skip=lambda idx: False)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        sample_distributed(D, SIGMAS, n=2, shape=(2, 1, 4, 4))
    with pytest.raises(ValueError, match="one \\(C, H, W\\) image per sample"):
        sample_distributed(D, SIGMAS, n=5, shape=(1, 4, 4), init=starts[:3])


def _many(out, *extra):
    return ["sample-many", "-n", "5", "--batch", "2", "--denoiser", "ffdnet", "--size", "16", "--steps", "6",
            "--seed", "3", "--no-progress", "--out", str(out), *extra]


def test_sample_many_writes_indexed_pngs_equal_to_inrd_sample(tmp_path):
    assert main(_many(tmp_path / "many")) == 0
    names = sorted(p.name for p in (tmp_path / "many").iterdir())
    assert names == [f"sample_{i:06d}.png" for i in range(5)] + ["sample_many.json"]
    side = json.loads((tmp_path / "many/sample_many.json").read_text())
    assert side["n"] == 5 and side["world_size"] == 1 and side["batches"] == 3 and side["steps"] == 6
    assert side["timing"]["samples_written"] == 5 and side["fast"] is None
    # the lead's `inrd sample` with the same batch gives the same pixels, hence the same PNG bytes
    assert main(["sample", "--denoiser", "ffdnet", "--size", "16", "--steps", "6", "--seed", "3", "--batch", "2",
                 "--no-progress", "--out", str(tmp_path / "one")]) == 0
    for i in range(2):
        assert (tmp_path / f"many/sample_{i:06d}.png").read_bytes() == (tmp_path / f"one/sample_{i:03d}.png").read_bytes()


def test_sample_many_skip_existing_resumes(tmp_path):
    out = tmp_path / "many"
    assert main(_many(out, "--chunk", "1")) == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.png")}
    (out / "sample_000003.png").unlink()
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert main(_many(out, "--skip-existing", "--chunk", "1")) == 0
    after = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert after == before  # the missing one is back, identical
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in stamp.items() if n not in ("sample_000002.png",))
    assert json.loads((out / "sample_many.json").read_text())["timing"]["samples_written"] == 2  # batch [2, 4) only


@pytest.mark.parametrize(
    "args, message",
    [(["-n", "0"], "--num-samples must be >= 1"), (["--batch", "0"], "--batch must be >= 1"),
     (["--no-compile"], "add --fast"), (["--chunk", "-2"], "--chunk")],
)
def test_sample_many_errors(tmp_path, capsys, args, message):
    base = ["sample-many", "-n", "2", "--denoiser", "ffdnet", "--size", "8", "--steps", "2", "--no-progress", "--out", str(tmp_path / "o")]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err


SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from inrd import schedules
    from inrd.cli import main
    from inrd.denoisers import GaussianDenoiser
    from inrd.distributed import sample_distributed

    law, out, pngs = sys.argv[1:4]
    mean, cov = torch.load(law, weights_only=True)
    x = sample_distributed(GaussianDenoiser(mean, cov), schedules.geometric(12, 0.01, 2.0), n=7, shape=(1, 4, 4),
                           batch=2, seed=5, init_std=0.3)
    if x is not None:
        torch.save(x, out)
    sys.exit(main(["sample-many", "-n", "5", "--batch", "2", "--denoiser", "ffdnet", "--size", "16", "--steps", "6",
                   "--seed", "3", "--no-progress", "--out", pngs]))
    """
)


@pytest.mark.slow
def test_torchrun_two_processes_give_the_same_images(tmp_path, gaussian_law):
    """torchrun --nproc_per_node=2 (gloo, 127.0.0.1): gathered tensors bit for bit equal to one process,
    and `inrd sample-many` writes the same PNG bytes. Slow: 26-46 s measured on 2 shared cores (two
    more interpreters import torch, deepinv and inrd)."""
    mean, cov = gaussian_law(shape=(1, 4, 4))
    torch.save((mean, cov), tmp_path / "law.pt")
    (tmp_path / "run.py").write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # c10d rendezvous on a free port of 127.0.0.1 (no other network)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", "--rdzv-backend=c10d",
           "--rdzv-endpoint=127.0.0.1:0", str(tmp_path / "run.py"), str(tmp_path / "law.pt"), str(tmp_path / "x.pt"), str(tmp_path / "two")]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]

    two = torch.load(tmp_path / "x.pt", weights_only=True)
    one = sample_distributed(GaussianDenoiser(mean, cov), SIGMAS, n=7, shape=(1, 4, 4), batch=2, seed=5, init_std=0.3)
    assert torch.equal(two, one)
    assert main(_many(tmp_path / "one")) == 0
    for i in range(5):
        assert (tmp_path / f"two/sample_{i:06d}.png").read_bytes() == (tmp_path / f"one/sample_{i:06d}.png").read_bytes()
    side = json.loads((tmp_path / "two/sample_many.json").read_text())
    assert side["world_size"] == 2 and [t["samples"] for t in side["timing"]["ranks"]] == [3, 2]
