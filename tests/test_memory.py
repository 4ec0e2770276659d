"""inrd.memory: the one memory refusal, bounded by the machine, the cgroup and the address-space limit."""

import subprocess
import sys

import pytest

from inrd import memory


def test_require_refuses_more_than_is_available_in_one_line():
    have = memory.available_memory()
    assert have is not None and have > 0
    memory.require(1, "one byte", "nothing to do")
    with pytest.raises(ValueError, match=r"^a huge run needs at least .* GiB, .* GiB are available \(at most 85% .*\); ask for less\.$"):
        memory.require(have * 2 + 2**30, "a huge run", "ask for less")


def test_require_keeps_a_margin_for_what_its_lower_bound_estimates_leave_out(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda device=None: 10 * 2**30)
    memory.require(8.4 * 2**30, "most of it", "-")
    with pytest.raises(ValueError, match="needs at least 9.0 GiB, 10.0 GiB are available"):
        memory.require(9 * 2**30, "nearly all of it", "-")  # 90 % of the machine: killed, not refused, before


def test_the_cgroup_v2_limit_of_the_process_group_and_its_parents_counts(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/job/step\n")
    root = tmp_path / "fs"
    (root / "job" / "step").mkdir(parents=True)
    (root / "job" / "step" / "memory.max").write_text("max\n")  # no limit of its own
    (root / "job" / "step" / "memory.current").write_text("100\n")
    (root / "job" / "memory.max").write_text(str(3 * 2**30) + "\n")
    (root / "job" / "memory.current").write_text(str(2**30) + "\n")
    (root / "job" / "memory.stat").write_text(f"anon 5\ninactive_file {2**20}\n")
    assert memory._cgroup(root, proc) == 2 * 2**30 + 2**20  # limit - usage + reclaimable page cache


def test_the_cgroup_v1_limit_counts(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/docker/abc\n3:cpu:/docker/abc\n")
    folder = tmp_path / "memory" / "docker" / "abc"
    folder.mkdir(parents=True)
    (folder / "memory.limit_in_bytes").write_text("1000000\n")
    (folder / "memory.usage_in_bytes").write_text("400000\n")
    assert memory._cgroup(tmp_path, proc) == 600000


def test_the_address_space_limit_bounds_what_is_available():
    # a child process under `ulimit -v` of 6 GiB (torch's import alone maps about 3) sees at most what is left of it
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, resource.RLIM_INFINITY)); "
            "from inrd import memory; print(memory.available_memory(), memory._address_space())")
    have, left = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert 0 < left < 6 * 2**30 and have <= left
