"""Run the hostile inputs of docs/robustness.md added in the third round (every command and the library) and
print their table rows with the measured outcome.

    python docs/robustness_cases.py > /tmp/rows.md      # about 15 minutes on 2 cores
    python docs/robustness_cases.py X T > /tmp/rows.md  # only the rows whose id starts with X or T

Each CLI case runs in a fresh process inside a scratch folder holding the fixtures named in the page's
preamble; the outcome is read off the exit code and stderr: "one-line error" (exit 2, one line),
"runs" (exit 0, with the last line printed), or "traceback" / "crash" otherwise. Library cases are Python
expressions evaluated with ``D = lambda x, s: x`` and ``sigmas = schedules.geometric(5, 0.01, 1.0)``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

S = "inrd sample --no-progress --size 16 --steps 3 --batch 1"
X = "inrd restore --task deblur --observed obs.png --kernel gaussian:1.6 --noise-level 0.01 --iters 2"
T = "inrd train --no-progress --iters 2 --batch 2 --checkpoint-every 1"
CLI = [
    ("S41", f"{S} --out afile/sub", ""),
    ("S42", f"{S} --out afile/sub/deeper", ""),
    ("S43", f"{S} --out loop", "a symbolic-link loop"),
    ("S44", f"{S} --out dangling", "a dangling symbolic link"),
    ("S45", f"{S} --out {'n' * 300}", "a 300-character folder name"),
    ("S46", f"{S} --out ''", ""),
    ("S47", "inrd sample --no-progress --display 60000 --out o47", "the zoomed grid alone would need tens of GB"),
    ("S48", "inrd sample --no-progress --denoiser bm3d --size 8 --steps 2 --batch 1 --out o48", "segfaulted (exit 139) before"),
    ("S49", "inrd sample --no-progress --denoiser bm3d --size 3 --channels 1 --steps 2 --batch 1 --out o49", ""),
    ("S50", f"{S} --init gaussian:1:2:3 --out o50", "dropped the third field before"),
    ("S51", f"{S} --denoiser ffdnet --schedule sig_underscore.txt --out o51", "`1_0` was read as 10 before"),
    ("S52", f"{S} --schedule cosine --sigma-min 0.1 --out o52", "--sigma-min was ignored before"),
    ("S53", f"{S} --schedule training --sigma-max 1 --out o53", ""),
    ("S54", f"{S} --init 1e308 --out o54", "said 'x contains NaN' before"),
    ("S55", f"{S} --denoiser ffdnet --schedule latin1.txt --out o55", "a latin-1 byte in a comment"),
    ("S56", f"{S} --denoiser ffdnet --schedule dup.txt --out o56", "a duplicate level"),
    ("S57", f"{S} --clip X0 --rho IND --dtype Float64 --out o57", "names in other cases"),
    ("S58", f"{S} --steps many --out o58", "an argparse error"),
    ("S59", f"{S} --seed -1 --out o59", ""),
    ("S60", f"{S} --power 0 --schedule ddpm --out o60", ""),
    ("S61", f"{S} --first 0 --schedule ddpm --out o61", ""),
    ("S62", f"{S} --device meta --out o62", ""),
    ("S63", f"{S} --device cuda:3 --out o63", ""),
    ("S64", f"{S} --fast fp8 --out o64", ""),
    ("S65", f"{S} --no-compile --out o65", ""),
    ("S66", f"{S} --rho 0.5j --out o66", ""),
    ("S67", f"{S} --rho inf --out o67", ""),
    ("S68", f"{S} --sigma-min nan --schedule geometric --out o68", ""),
    ("S69", f"{S} --denoiser ffdnet --schedule nul.txt --out o69", "a binary file as sigma file"),
    ("S70", f"{S} --init '' --out o70", ""),
    ("S71", f"{S} --denoiser ffdnet --init gaussian:0.5:nan --out o71", ""),
    ("S72", f"{S} --snapshots 1 --out o72", "a trajectory strip"),
    ("S73", f"{S} --out {os.fsdecode(b'nonutf' + bytes([0xFF]))}", "a non-UTF-8 folder name"),
    ("S74a", f"{S} --out reuse2", "first run"),
    ("S74b", f"{S} --out reuse2", "the same run again: no resume in inrd sample"),
    ("M8", "inrd sample-many --no-progress --size 16 --steps 3 --denoiser ffdnet -n 1000000000 --batch 2 --out m8",
     "a billion samples: checked without building a billion ranges"),
    ("M9a", "inrd sample-many --no-progress --size 16 --steps 3 --denoiser ffdnet -n 4 --batch 2 --out m9", "first run"),
    ("M9b", "inrd sample-many --no-progress --size 16 --steps 3 --denoiser ffdnet -n 4 --batch 2 --out m9 --skip-existing",
     "after truncating m9/sample_000001.png: the batch is sampled again"),
    ("M10", "inrd sample-many --no-progress --size 16 --steps 3 --denoiser ffdnet -n 2 --out afile/sub", ""),
    ("M11", "env RANK=0 WORLD_SIZE=2 MASTER_ADDR=no-such-host.invalid MASTER_PORT=29777 inrd sample-many --no-progress --size 16 --steps 3 "
            "--denoiser ffdnet -n 2 --out m11", "printed ~40 lines of C++ frames before"),
    ("M12", "inrd sample-many --no-progress --size 16 --steps 3 --denoiser ffdnet -n 2 --cuda-graphs --out m12", ""),
    ("C4", "inrd schedules --out loop/x.png", ""),
    ("C5", f"inrd schedules --out {'n' * 300}.png", ""),
    ("C6", "inrd schedules --out afile", "an existing file that is not a .png"),
    ("R4", "inrd reproduce fig2 --size 7 --out r4", "a torch.cat traceback before"),
    ("R5", "inrd reproduce fig1 --out afile/sub", ""),
    ("R6", "inrd --help", "help lists every experiment"),
    ("X20", f"{X} --out afile/sub", "FileExistsError before"),
    ("X21", f"{X} --out afile/sub/deeper", "NotADirectoryError before"),
    ("X22", f"{X} --out loop", "the work was lost at the final rename before"),
    ("X23", f"{X} --out dangling", ""),
    ("X24", f"{X} --out {'n' * 300}", "OSError [Errno 36] before"),
    ("X25", f"{X} --out ''", "reported as --out . before"),
    ("X26", "inrd restore --task denoise --observed obs.png --noise-level 0.1 --algorithm inrd-posterior --samples 100000 --out x26",
     "an allocation traceback after 35 s before"),
    ("X27", "inrd restore --task denoise --observed huge.png --noise-level 0.1 --out x27", "a 12000x12000 PNG"),
    ("X28", "inrd restore --task denoise --observed odd.png --noise-level 0.05 --denoiser inrd-small --iters 2 --out x28",
     "a 33x31 gray image: torch.cat traceback before"),
    ("X29", f"{X} --device cuda --out x29", ""),
    ("X30", f"{X} --device meta --out x30", ""),
    ("X31", "inrd restore --task deblur --observed obs.png --kernel gaussian:1.6 --noise-level 1e-300 --iters 2 --out x31",
     "ZeroDivisionError in hqs before"),
    ("X32", "inrd restore --task deblur --observed obs.png --kernel gaussian:1.6 --noise-level 5 --iters 2 --out x32",
     "spoke of sigma_min before"),
    ("X33", "inrd restore --task inpaint --observed obs.png --mask textmask.npy --noise-level 0.01 --iters 2 --out x33",
     "a text file named .npy: numpy's allow_pickle advice before"),
    ("X34", "inrd restore --task inpaint --observed obs.png --mask corrupt.npy --noise-level 0.01 --iters 2 --out x34",
     "did not name the file before"),
    ("X35", "inrd restore --task inpaint --observed obs.png --mask complex.npy --noise-level 0.01 --iters 2 --out x35",
     "lost its imaginary part before"),
    ("X36", "inrd restore --task denoise --observed rgb.png --truth obs.png --noise-level 0.05 --iters 2 --out x36",
     "a gray truth for an RGB observation: PSNR 8.64 dB before"),
    ("X37", f"{X} --kernel k3.npy --out x37", "a 3-channel kernel on a gray image: 'z' before"),
    ("X38a", f"{X} --out x38", "first run"),
    ("X38b", f"{X} --out x38", "the same folder again"),
    ("X39", f"{X} --out reuse2", "into an inrd sample folder"),
    ("X40", f"{X} --denoiser model.safetensors --out x40", "tried as a DiffUNet before"),
    ("D10", "inrd deblur --size 32 --iters 2 --out afile/sub", ""),
    ("D11", "inrd deblur --size 32 --iters 2 --device meta --out d11", ""),
    ("D12", "inrd deblur --size 32 --iters 2 --noise-level 1e-300 --out d12", ""),
    ("T20", f"{T} --out afile/sub", ""),
    ("T21", f"{T} --device meta --out t21", "RuntimeError traceback before"),
    ("T22", f"{T} --warmup -1 --out t22", "accepted before"),
    ("T23", f"{T} --seed -1 --out t23", "numpy's message before"),
    ("T24", f"{T} --out reuse2", "into an inrd sample folder: exit 0 among the samples before"),
    ("T25", f"{T} --out {'n' * 300}", ""),
    ("A10", "inrd analyze --size 100000", "80 GB: an allocation after minutes before"),
    ("A11", "inrd analyze --spectrum patches --patch 200", ""),
    ("W10", "inrd weights verify tampered/inrd_small.safetensors", "exit 0 before although its JSON records the sha256"),
    ("W11", "inrd weights verify truncated/inrd_small.safetensors", ""),
    ("W12", "inrd weights verify /dev/zero", "said the file does not exist before"),
    # a full disk: each of these runs on its own 300 KiB tmpfs mounted at full_ID (needs root; skipped otherwise)
    ("S75", "inrd sample --no-progress --batch 64 --display 96 --out full_S75/o", "raw OSError [Errno 28] before"),
    ("C7", "inrd schedules --out full_C7/s.png", "raw OSError [Errno 28] before"),
    ("X41", "inrd restore --task denoise --observed rgb.png --noise-level 0.05 --iters 2 --out full_X41/o", ""),
    ("T26", f"{T} --channels 64,128,128 --out full_T26/o", "RuntimeError 'unexpected pos' from torch.save before"),
]

LIB = [
    ("L26", "inrd.sample(D, sigmas, shape=(1, 1, 4.7, 4))", "4.7 became 4 before"),
    ("L27", "inrd.sample(D, sigmas, shape=(1, 1, 4, 4), seed=1.5)", "gave seed 1's samples before"),
    ("L28", "inrd.sample(D, sigmas, shape=(1, 1, 4, 4), max_abs=-1)", ""),
    ("L29", "inrd.sample(D, sigmas, shape=(2, 1, 4, 4), noise=lambda t, like: torch.zeros(1, 1, 4, 4))", "was broadcast before"),
    ("L30", "inrd.sample(D, torch.tensor([0, 0.1, 0.2], dtype=torch.complex64), shape=(1, 1, 4, 4))", "lost the imaginary part before"),
    ("L31", "schedules.ddpm(T=10**9)", ""),
    ("L32", "inrd.sample(D, relaxations.scheme(sigmas, 'ddim'), 'ind', shape=(1, 1, 4, 4))", ""),
    ("L33", "relaxations.scheme(sigmas, 'IND').rho", "names in any case, one spelling"),
    ("L34", "inrd.sample(D, sigmas, shape=(1, 1, 4, 4), init=0.5j)", ""),
    ("L35", "inrd.sample(D, sigmas, shape=(1, 1, 4, 4), first_index=-1)", ""),
    ("L36", "json.loads(open(start_run_manifest()).read(), parse_constant=refuse)['params']['rhos'][0]", "run.json held a bare NaN before"),
    ("L37", "denoisers.load('bm3d')(torch.rand(1, 3, 8, 8), 0.1).shape", "segfaulted before"),
    ("L38", "list(distributed.batches(10**9, 16)[-1:])", "a billion samples: a lazy sequence"),
    ("L39", "choices.choose('Pnp_Pgd', choices.Algorithm, 'algorithm')", ""),
    ("L40", "plan.SampleOptions(chunk=-3)", ""),
    ("L41", "restoration.restore(torch.rand(1, 1, 16, 16), restoration.Denoising(), D, 1e-300, 'hqs')", "ZeroDivisionError before"),
    ("L42", "scheduler().step(torch.zeros(1, 3, 8, 8), 999, torch.zeros(1, 1, 8, 8))", "a 3-channel output was broadcast before"),
    ("L43", "scheduler().step(torch.zeros(1, 1, 8, 8), 999.7, torch.zeros(1, 1, 8, 8))", "999.7 was truncated to 999 before"),
    ("L44", "scheduler().add_noise(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), torch.tensor([1000]))", "IndexError before"),
    ("L45", "scheduler().step(torch.zeros(1, 1, 8, 8, dtype=torch.int64), 999, torch.zeros(1, 1, 8, 8))",
     "NotImplementedError before"),
]

FIXTURES = {
    "sig_underscore.txt": b"0 0.01 1_0\n",
    "latin1.txt": b"0 0.01 # niveau \xe9lev\xe9\n0.05 0.1\n",
    "dup.txt": b"0 0.01 0.01 0.1\n",
    "nul.txt": b"0 0.01\x00\n",
    "afile": b"",
}

PRELUDE = """
import json, torch, inrd
from inrd import schedules, relaxations, denoisers, distributed, choices, plan, runs
D = lambda x, s: x
sigmas = schedules.geometric(5, 0.01, 1.0)
from inrd import restoration
def refuse(c): raise ValueError(f"non-strict JSON constant {c}")
def scheduler():
    from inrd.diffusers import INRDScheduler
    s = INRDScheduler()
    s.set_timesteps(10)
    return s
def start_run_manifest():
    with runs.start_run('manifest_run', {'rhos': [float('nan'), 0.5]}):
        pass
    return 'manifest_run/run.json'
"""


def _outcome(rc: int, err: str, out: str) -> tuple[str, str]:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    if rc == 0:
        return "runs", (out.strip().splitlines() or [""])[-1]
    if rc == 2 and len(lines) == 1:
        return "one-line error", lines[0]
    if rc < 0 or rc > 128:
        return f"crash (exit {rc})", (lines or [""])[-1]
    return f"traceback (exit {rc}, {len(lines)} lines)", (lines or [""])[-1]


def _row(case_id: str, shown: str, outcome: str, message: str, note: str) -> str:
    message = message.replace("|", "\\|")
    message = message if len(message) <= 220 else message[:217] + "..."
    return f"| {case_id} | `{shown}` | {outcome}{'; ' + note if note else ''} | {message} |"


def _images(root: Path) -> None:
    """The image, mask, kernel and weight fixtures of the restore, train and weights rows."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8)).save(root / "obs.png")
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(root / "rgb.png")
    Image.fromarray((rng.random((31, 33)) * 255).astype(np.uint8)).save(root / "odd.png")
    Image.fromarray(np.zeros((12000, 12000), np.uint8)).save(root / "huge.png")
    (root / "textmask.npy").write_text("1 0 1\n")
    (root / "corrupt.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    np.save(root / "complex.npy", (rng.random((32, 32)) > 0.5) + 1j * 0.5)
    np.save(root / "k3.npy", np.ones((3, 5, 5)) / 75)
    (root / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    from inrd.weights import registry  # the shipped inrd-small weights and their sidecar, altered

    src = Path(registry.__file__).resolve().parents[1] / "checkpoints"
    for kind in ("tampered", "truncated"):
        (root / kind).mkdir()
        for f in src.glob("inrd_small.*"):
            (root / kind / f.name).write_bytes(f.read_bytes())
    w = (root / "tampered" / "inrd_small.safetensors")
    data = bytearray(w.read_bytes())
    data[-100] ^= 0xFF
    w.write_bytes(bytes(data))
    t = root / "truncated" / "inrd_small.safetensors"
    t.write_bytes(t.read_bytes()[: len(data) // 2])


def main(prefixes: list[str]) -> None:
    inrd = [sys.executable, "-m", "inrd"]
    wanted = lambda case_id: not prefixes or case_id.startswith(tuple(prefixes))  # noqa: E731
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for name, data in FIXTURES.items():
            (root / name).write_bytes(data)
        _images(root)
        (root / "loop").symlink_to(root / "loop")
        (root / "dangling").symlink_to(root / "nowhere")
        if not wanted("S74a"):  # X39 and T24 write into the sample folder that S74a makes
            subprocess.run(inrd + shlex.split(f"{S} --out reuse2")[1:], cwd=root, capture_output=True)
        for case_id, cmd, note in filter(lambda case: wanted(case[0]), CLI):
            argv = shlex.split(cmd)
            env = dict(os.environ)
            if argv[0] == "env":
                while "=" in argv[1]:
                    k, v = argv[1].split("=", 1)
                    env[k] = v
                    argv.pop(1)
                argv.pop(0)
            full = root / f"full_{case_id}"
            if f"full_{case_id}" in cmd:
                full.mkdir()
                if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(full)]).returncode:
                    continue
            if case_id == "M9b":
                png = root / "m9" / "sample_000001.png"
                png.write_bytes(png.read_bytes()[:40])
            p = subprocess.run(inrd + argv[1:], cwd=root, env=env, capture_output=True, text=True, errors="backslashreplace")
            if full.is_mount():
                subprocess.run(["umount", str(full)])
            outcome, message = _outcome(p.returncode, p.stderr, p.stdout)
            print(_row(case_id, cmd if len(cmd) < 160 else cmd[:157] + "...", outcome, message, note), flush=True)
        for case_id, expr, note in filter(lambda case: wanted(case[0]), LIB):
            code = PRELUDE + f"\nprint(repr({expr}))"
            wrapped = f"try:\n    exec({code!r})\nexcept (ValueError, TypeError) as e:\n    import sys; print(str(e), file=sys.stderr); sys.exit(2)\n"
            p = subprocess.run([sys.executable, "-c", wrapped], cwd=root, capture_output=True, text=True)
            outcome, message = _outcome(p.returncode, p.stderr, p.stdout)
            print(_row(case_id, expr, outcome, message, note))


if __name__ == "__main__":
    main(sys.argv[1:])
