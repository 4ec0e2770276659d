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


def _many(out, *extra):
    return ["sample-many", "-n", "5", "--batch", "2", "--denoiser", "ffdnet", "--size", "16", "--steps", "6",
            "--seed", "3", "--no-progress", "--out", str(out), *extra]


def test_stale_torchrun_environment_fails_fast(tmp_path, monkeypatch, capsys):
    """RANK/WORLD_SIZE left set without torchrun: the rendezvous waits INRD_RENDEZVOUS_TIMEOUT, then one line."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    for k, v in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                 "INRD_RENDEZVOUS_TIMEOUT": "1"}.items():
        monkeypatch.setenv(k, v)
    assert main(_many(tmp_path / "o")) == 2  # returns (after the 1 s timeout) instead of waiting forever
    err = capsys.readouterr().err
    assert "could not meet the other processes" in err and "unset RANK and WORLD_SIZE" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()  # nothing written, no empty folder
    monkeypatch.delenv("MASTER_ADDR")
    assert main(_many(tmp_path / "o")) == 2
    assert "MASTER_ADDR not set" in capsys.readouterr().err
    monkeypatch.setenv("INRD_RENDEZVOUS_TIMEOUT", "soon")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert main(_many(tmp_path / "o")) == 2
    assert "INRD_RENDEZVOUS_TIMEOUT must be a positive number" in capsys.readouterr().err


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
    assert json.loads((tmp_path / "two/run.json").read_text())["params"] == json.loads((tmp_path / "one/run.json").read_text())["params"]


def test_batches_are_lazy_even_for_a_billion_samples():
    from inrd.distributed import batches, rank_batches

    b = batches(10**9, 16)
    assert len(b) == 62_500_000 and b[0] == range(0, 16) and b[-1] == range(999_999_984, 10**9)
    assert list(batches(5, 2)) == [range(0, 2), range(2, 4), range(4, 5)]
    assert list(rank_batches(7, 2, 1, 2)) == [range(2, 4), range(6, 7)]
    assert len(rank_batches(10**9, 16, 3, 8)) == 7_812_500


def test_an_unresolvable_master_addr_is_one_line_at_once(monkeypatch):
    from inrd import distributed

    monkeypatch.setenv("MASTER_ADDR", "no-such-host.invalid")
    monkeypatch.setenv("MASTER_PORT", "29777")
    with pytest.raises(ValueError, match=r"MASTER_ADDR 'no-such-host.invalid' is not a host name or address"):
        distributed._rendezvous(0, 2)
