"""The memory preflight: train.py's GPU profile on fake CPU tensors (prepare.py, AUTORESEARCH_PREFLIGHT),
its accuracy against the operating system's measurement of real CPU runs, refusals through the job
and through the Modal runner, and the sandbox it runs in.

Accuracy: the same script runs (a) under the preflight (fake tensors, nothing computed) and (b) for
real on this CPU, where the peak is measured independently of the tracker: VmHWM (the kernel's
high-water mark of resident memory, restarted after importing torch and building the inputs)
minus the resident size at that point. Real runs use one thread and allocations of MBs, which glibc
serves with mmap (returned to the system when freed), so resident memory follows live tensors.
"""

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

from bot.gpu_memory import gpu_memory_gib, verdict
from bot.runners import Experiment
from bot.runners.modal import ModalRunner
from gpu_jobs import modal_app
from gpu_jobs.job import JobSpec, run_job
from gpu_jobs.sandbox import probe

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
needs_sandbox = pytest.mark.skipif(not probe()[0], reason=f"no sandbox here: {probe()[1]}")
HARNESS = {"prepare.py": hashlib.sha256((ROOT / "prepare.py").read_bytes()).hexdigest()}


def preflight(tmp_path, train_text, extra_env=None):
    """Run prepare's preflight on `train_text` in a subprocess; return its estimate."""
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text(train_text)
    (source / "prepare.py").write_bytes((ROOT / "prepare.py").read_bytes())
    out = tmp_path / "estimate.json"
    env = dict(os.environ, AUTORESEARCH_PREFLIGHT=str(out), CUDA_VISIBLE_DEVICES="", **(extra_env or {}))
    done = subprocess.run([sys.executable, "train.py"], cwd=source, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(out.read_text())


def shipped_constant(name):
    return int(re.search(rf"^{name} = (\d+)", (ROOT / "train.py").read_text(), flags=re.M).group(1))


def shipped(**changes):
    text = (ROOT / "train.py").read_text()
    for name, value in changes.items():
        text, n = re.subn(rf"^{name} = \S+", f"{name} = {value}", text, flags=re.M)
        assert n == 1, name
    return text


# ---------------------------------------------------------------------------
# GPU sizes and the verdict (pure)
# ---------------------------------------------------------------------------


def test_gpu_sizes_by_modal_name():
    assert gpu_memory_gib("H100!") == gpu_memory_gib("h100:2") == gpu_memory_gib("H100") == 79.1
    assert gpu_memory_gib("A100") == gpu_memory_gib("A100-40GB") < gpu_memory_gib("A100-80GB")
    assert gpu_memory_gib("T4") < gpu_memory_gib("L4") < gpu_memory_gib("L40S") < gpu_memory_gib("H200")
    assert gpu_memory_gib("TPU") is None
    fits, reason, _ = verdict({"train_peak_bytes": 10 * 2**30, "handoff_peak_bytes": 0}, "mystery-gpu")
    assert fits and "not checked" in reason


def test_the_verdict_names_the_estimate_capacity_and_fix():
    fits, reason, facts = verdict({"train_peak_bytes": 160 * 2**30, "handoff_peak_bytes": 2**30}, "H100!")
    assert not fits and facts["decided_by"] == "training"  # 160 GiB eager x 0.5 compiled x 1.15 fragmentation
    assert "estimated peak 92.0 GiB > 78.1 GiB usable on H100" in reason and "lower DEVICE_BATCH_SIZE" in reason
    assert verdict({"train_peak_bytes": 160 * 2**30, "handoff_peak_bytes": 0}, "H200")[0]
    # autoresearch's own baseline (estimated here at 95.2 GiB eager; 44.0 GiB measured on an H100) fits
    assert verdict({"train_peak_bytes": 95.2 * 2**30, "handoff_peak_bytes": 15 * 2**30}, "H100!")[0]


# ---------------------------------------------------------------------------
# The shipped train.py's GPU profile, and candidates that double or quadruple it
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return preflight(tmp_path_factory.mktemp("baseline"), shipped())


def test_the_shipped_baseline_fits_an_h100(baseline):
    fits, reason, facts = verdict(baseline, "H100!")
    assert fits, reason
    assert baseline["batch_size"] == shipped_constant("DEVICE_BATCH_SIZE")  # the GPU profile ran
    assert baseline["seq_len"] == 2048
    assert baseline["batches"] >= 4  # 2 micro-batches per step: at least 2 optimizer steps ran
    assert baseline["scalar_reads"] >= 2  # loss.item() answered, once per step
    # CPU SDPA took the flash path (out + logsumexp saved), as the GPU's flash/flex attention does
    assert any("flash" in name for name in baseline["attention_ops"])
    assert not any("math" in name for name in baseline["attention_ops"])
    assert baseline["train_peak_bytes"] > 8 * baseline["param_bytes"]  # activations dominate
    print(f"\nshipped GPU profile: {facts} in {baseline['seconds']} s")


@pytest.mark.parametrize("changes, growth", [({"DEVICE_BATCH_SIZE": 2}, 1.8), ({"DEPTH": 2}, 1.4),
                                             ({"DEVICE_BATCH_SIZE": 4}, 3.5)], ids=["batch x2", "depth x2", "batch x4"])
def test_doubled_or_quadrupled_candidates_are_refused_on_an_h100(tmp_path, baseline, changes, growth):
    """Twice the batch doubles every activation; twice the depth doubles the blocks' but not the
    logits' (vocab 8192: a third of the baseline's peak)."""
    changes = {name: factor * shipped_constant(name) for name, factor in changes.items()}
    if "DEVICE_BATCH_SIZE" in changes:  # the step must still hold a whole number of micro-batches
        changes["TOTAL_BATCH_SIZE"] = max(shipped_constant("TOTAL_BATCH_SIZE"), changes["DEVICE_BATCH_SIZE"] * 2048)
    estimate = preflight(tmp_path, shipped(**changes))
    assert estimate["peak_bytes"] > growth * baseline["peak_bytes"]
    fits, reason, facts = verdict(estimate, "H100!")
    assert not fits
    assert f"estimated peak {facts['estimate_gib']:.1f} GiB > 78.1 GiB usable on H100" in reason
    assert "DEVICE_BATCH_SIZE" in reason


# ---------------------------------------------------------------------------
# Accuracy: the fake estimate against real CPU runs of the same shapes, measured by the kernel
# ---------------------------------------------------------------------------

SHAPES_TRAIN = """\
import os, sys, torch
import torch.nn as nn, torch.nn.functional as F
import prepare
torch.set_num_threads(1)
D, L, B, T = {shape}
V = prepare.VOCAB_SIZE  # the hand-over checks the logits' width

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv, self.proj = nn.Linear(D, 3 * D, bias=False), nn.Linear(D, D, bias=False)
        self.fc, self.out = nn.Linear(D, 4 * D, bias=False), nn.Linear(4 * D, D, bias=False)
    def forward(self, x):
        b, t, _ = x.shape  # the hand-over traces (B, MAX_SEQ_LEN)
        q, k, v = self.qkv(F.rms_norm(x, (D,))).view(b, t, 3, 4, D // 4).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, D))
        return x + self.out(F.relu(self.fc(F.rms_norm(x, (D,)))).square())

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.head = nn.Embedding(V, D), nn.Linear(D, V, bias=False)
        self.blocks = nn.ModuleList(Block() for _ in range(L))
    def forward(self, idx):
        x = self.wte(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(F.rms_norm(x, (D,)))

x, y = torch.randint(V, (B, T)), torch.randint(V, (B, T))
warm = Net()  # one tiny step first: the library code it pages in is not tensor memory
wopt = torch.optim.AdamW(warm.parameters(), lr=1e-3, foreach=False)
F.cross_entropy(warm(x[:1, :16]).view(-1, V), y[:1, :16].reshape(-1)).backward()
wopt.step()
del warm, wopt
base = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
open("/proc/self/clear_refs", "w").write("5")  # the high-water mark restarts from here


def high_water_mark():  # this process's own peak resident bytes: ru_maxrss would also count the
    # parent's resident size at fork (Linux carries it across exec), which pytest's grows with the suite
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024
model = Net()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False)
for step in range(3):
    loss = F.cross_entropy(model(x).view(-1, V), y.view(-1))
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    print(f"step {{step}} loss {{loss.item():.3f}}", flush=True)
if os.environ.get("AUTORESEARCH_PREFLIGHT"):
    prepare.evaluate_bpb(model, B)
print("PEAK", high_water_mark() - base)
"""

# (width, depth, batch, seq): wide with long rows, deep, a large batch of short rows
SHAPES = [(512, 2, 8, 512), (256, 8, 16, 256), (384, 3, 64, 128)]


@pytest.mark.parametrize("shape", SHAPES, ids=["wide", "deep", "batch"])
def test_the_estimate_is_within_20_percent_of_a_real_cpu_run(tmp_path, shape):
    text = SHAPES_TRAIN.format(shape=shape)
    # the same vocabulary on both sides: byte-level (with the default source the preflight, being the
    # GPU profile, would size the logits for the GPU's BPE vocabulary)
    estimate = preflight(tmp_path, text, {"AUTORESEARCH_DATA": "stdlib"})["train_peak_bytes"]
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    (real_dir / "train.py").write_text(text)
    (real_dir / "prepare.py").write_bytes((ROOT / "prepare.py").read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_PREFLIGHT")}
    # a fixed mmap threshold: glibc's adaptive one would serve freed-and-reallocated MBs from a heap
    # that does not shrink, and resident memory would remember more than was ever live at once
    env.update(CUDA_VISIBLE_DEVICES="", MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536",
               AUTORESEARCH_DATA="stdlib")
    done = subprocess.run([sys.executable, "train.py"], cwd=real_dir, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = int(done.stdout.split("PEAK")[1])
    print(f"\n{shape}: estimate {estimate / 2**20:.0f} MiB, measured {measured / 2**20:.0f} MiB, "
          f"ratio {estimate / measured:.3f}")
    assert measured > 200 * 2**20  # large enough that the measurement is not noise
    assert abs(estimate - measured) <= 0.2 * measured


# ---------------------------------------------------------------------------
# Through the job and through the Modal runner
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def source_with(tmp_path, train_text):
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text(train_text)
    (source / "prepare.py").write_bytes((ROOT / "prepare.py").read_bytes())
    return source


def test_the_job_refuses_a_quadrupled_batch_before_training(tmp_path, split_cache):
    batch = 4 * shipped_constant("DEVICE_BATCH_SIZE")
    source = source_with(tmp_path, shipped(DEVICE_BATCH_SIZE=batch, TOTAL_BATCH_SIZE=batch * 2048))
    spec = JobSpec(source_dir=str(source), data="stdlib", expected_harness=dict(HARNESS), budget_seconds=5.0,
                   memory_preflight=True, gpu="H100!", log_path=str(tmp_path / "run.log"))
    result = run_job(spec, environ=dict(os.environ, AUTORESEARCH_CACHE_DIR=split_cache, CUDA_VISIBLE_DEVICES=""))
    assert result["status"] == "crash"
    assert re.search(r"memory preflight: estimated peak \d+\.\d GiB > 78\.1 GiB usable on H100", result["reason"])
    assert result["preflight"]["verdict"] == "refused" and result["timings"]["preflight_s"] > 0
    assert "train_s" not in result["timings"]  # nothing trained
    assert not (source / ".autoresearch-preflight").exists()


def test_the_job_goes_on_when_the_preflight_is_inconclusive(tmp_path, split_cache):
    source = source_with(tmp_path, "import prepare\nraise SystemExit('no preflight for me')\n")
    spec = JobSpec(source_dir=str(source), data="stdlib", expected_harness=dict(HARNESS), budget_seconds=5.0,
                   memory_preflight=True, gpu="H100!")
    result = run_job(spec, environ=dict(os.environ, AUTORESEARCH_CACHE_DIR=split_cache, CUDA_VISIBLE_DEVICES=""))
    assert any("memory preflight inconclusive" in flag for flag in result["flags"])
    assert "train_s" in result["timings"]  # the run itself went ahead (and failed on its own)


class RemotePreflight:
    """Stands in for the deployed `memory_preflight` function: runs its body here, on this CPU."""

    def __init__(self):
        self.calls = []

    def remote(self, spec, files):
        self.calls.append(spec)
        return modal_app.check_memory(spec, files)


class NeverSpawn:
    def with_options(self, **options):
        return self

    def spawn(self, spec, files):
        raise AssertionError("a refused experiment must not reach the GPU")


def test_the_modal_runner_refuses_before_spawning_the_gpu_call(tmp_path):
    source = source_with(tmp_path, shipped(DEPTH=32))
    memory = RemotePreflight()
    runner = ModalRunner(NeverSpawn(), "H100!", 0.001, state_path=tmp_path / "state.json", memory_function=memory)
    runner.data_meta = {"train_bytes": 1000}
    experiment = Experiment(id=1, commit="c0ffee", source_dir=str(source), work_dir=str(tmp_path / "work"),
                            command="python train.py", metric="val_bpb", budget_seconds=300.0, timeout_seconds=600.0,
                            seed=42, data="parquet", expected_harness=dict(HARNESS),
                            log_path=str(tmp_path / "0001.log"), memory_preflight=True)
    result = runner.submit(experiment).result(timeout=0)
    assert result.status == "crash" and "usable on H100" in result.reason and "estimated peak" in result.reason
    assert memory.calls[0]["gpu"] == "H100!" and memory.calls[0]["data_bytes"] == 1000
    assert "preflight_s" in result.timings and result.cost_usd == 0.0


# ---------------------------------------------------------------------------
# Hostile train.py in preflight mode: the same sandbox as the train phase, no secrets
# ---------------------------------------------------------------------------

HOSTILE = """\
import json, os, socket
import prepare
report = {{"env": dict(os.environ), "outside": None, "net": None}}
try:
    open({outside!r}, "w").write("pwned")
    report["outside"] = "written"
except OSError as e:
    report["outside"] = str(e)
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    report["net"] = "connected"
except OSError as e:
    report["net"] = str(e)
open("report-" + os.environ.get("AUTORESEARCH_PHASE", "none") + ".json", "w").write(json.dumps(report))
raise SystemExit(3)
"""


@needs_sandbox
def test_a_hostile_preflight_is_sandboxed_without_secrets(tmp_path, split_cache):
    outside = tmp_path / "outside.txt"
    outside.write_text("intact")
    source = source_with(tmp_path, HOSTILE.format(outside=str(outside)))
    spec = JobSpec(source_dir=str(source), data="stdlib", expected_harness=dict(HARNESS), budget_seconds=5.0,
                   memory_preflight=True, gpu="H100!", isolation="sandbox")
    secret = "ghp_" + "Q7" * 18
    result = modal_app.check_memory({**{k: getattr(spec, k) for k in ("command", "expected_harness", "isolation",
                                                                       "data", "gpu")}, "budget_seconds": 5.0},
                                    {"train.py": (source / "train.py").read_bytes(),
                                     "prepare.py": (source / "prepare.py").read_bytes()},
                                    environ=dict(os.environ, GITHUB_TOKEN=secret, MODAL_TOKEN_SECRET=secret,
                                                 AUTORESEARCH_CACHE_DIR=split_cache))
    assert result["status"] == "ok" and any("inconclusive" in f for f in result["flags"])  # exit 3: no verdict
    # the same train.py through the job, whose scratch directory the test can read afterwards
    run_job(JobSpec(source_dir=str(source), data="stdlib", expected_harness=dict(HARNESS), budget_seconds=5.0,
                    memory_preflight=True, gpu="H100!", isolation="sandbox", timeout_seconds=30),
            environ=dict(os.environ, GITHUB_TOKEN=secret, AUTORESEARCH_CACHE_DIR=split_cache))
    report = json.loads((source / "report-preflight.json").read_text())
    assert report["env"]["AUTORESEARCH_PREFLIGHT"].endswith("estimate.json")
    assert "GITHUB_TOKEN" not in report["env"] and secret not in json.dumps(report["env"])
    assert outside.read_text() == "intact"  # (inside, /tmp is a private tmpfs: a write there goes nowhere)
    assert report["net"] != "connected"


class CountingPreflight:
    def __init__(self, verdict):
        self.verdict, self.calls = verdict, 0

    def remote(self, spec, files):
        self.calls += 1
        return {"preflight": {"verdict": self.verdict}, "flags": []}


@pytest.mark.parametrize("verdict, calls", [("fits", 1), ("refused", 1), ("inconclusive", 3)])
def test_replicates_of_one_commit_share_a_conclusive_preflight(tmp_path, verdict, calls):
    """The estimate depends on the files, not the seed: a baseline's 3 seeds ask Modal once."""
    memory = CountingPreflight(verdict)
    runner = ModalRunner(NeverSpawn(), "H100!", 0.001, state_path=tmp_path / "state.json", memory_function=memory)
    experiment = Experiment(id=1, commit="c0ffee", source_dir=str(tmp_path), work_dir=str(tmp_path / "work"),
                            command="python train.py", metric="val_bpb", budget_seconds=300.0, timeout_seconds=600.0,
                            seed=42, data="parquet", expected_harness=dict(HARNESS), log_path=str(tmp_path / "x.log"),
                            memory_preflight=True)
    spec = {"metric": "val_bpb", "metric_regex": "", "expected_harness": dict(HARNESS), "seed": 42}
    files = {"train.py": b"print(1)\n"}
    for seed in (42, 43, 44):
        assert runner.check_memory(experiment, dict(spec, seed=seed), files)["preflight"]["verdict"] == verdict
    assert memory.calls == calls
    runner.check_memory(experiment, spec, {"train.py": b"print(2)\n"})  # another change: asked again
    assert memory.calls == calls + 1
