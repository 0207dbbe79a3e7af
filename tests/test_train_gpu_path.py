"""The CUDA path of train.py, as far as a CPU can run it: the GPU profile's model under torch.compile
(no graph breaks, no recompiles from training to evaluation), its FLOP count against the MFU formula,
the sliding-window kernels against each other, Muon against a reference, and the peak FLOPs table.

train.py is a script; its definitions (imports, UPPER_CASE constants, functions, classes) are taken
from its source with the setup and the loop left out, so these tests build its model at any size."""

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import prepare

ROOT = Path(__file__).resolve().parents[1]


def train_definitions(**overrides):
    """train.py's imports, constants (with `overrides`), functions and classes, executed in a namespace."""
    tree = ast.parse((ROOT / "train.py").read_text())

    def wanted(node):
        if isinstance(node, ast.ImportFrom):
            return node.module != "prepare"
        if isinstance(node, ast.Assign):
            return isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper()
        return isinstance(node, (ast.Import, ast.FunctionDef, ast.ClassDef))

    namespace = {}
    exec(compile(ast.Module([n for n in tree.body if wanted(n)], type_ignores=[]), "train.py", "exec"), namespace)
    for name, value in overrides.items():
        assert name in namespace, f"train.py has no constant {name}"
        namespace[name] = value
    return namespace


def gpu_profile_model(ns, vocab=512, seq_len=256, width=64, heads=2, device="cpu"):
    """The GPU profile's structure (DEPTH layers, its windows, value embeddings, scalars, softcap) at a
    width, vocabulary and context small enough for a CPU."""
    torch.manual_seed(0)
    with torch.device(device):
        return ns["GPT"](vocab, seq_len, ns["DEPTH"], width, heads, ns["MLP_RATIO"])


# autoresearch's ingredients that are built in but off by default (they did not pay at a fixed step
# count on the CPU profile: benchmarks/results/gpu-plan.md); the tests switch them on to cover them.
ALL_ON = {"VALUE_EMBED_EVERY": 2, "LOGIT_SOFTCAP": 15.0}


def test_the_gpu_profile_has_autoresearchs_ingredients():
    ns = train_definitions()
    model = gpu_profile_model(ns)
    assert model.windows == [128, 128, 128, 256, 128, 128, 128, 256]  # SSSL SSSL, the last layer full
    assert model.resid_lambdas is not None and ns["MUON"] is True
    assert not model.value_embeds and ns["LOGIT_SOFTCAP"] == 0  # measured not to pay on the CPU profile
    switched_on = gpu_profile_model(train_definitions(**ALL_ON))
    assert sorted(switched_on.value_embeds) == ["1", "3", "5", "7"]  # alternate layers, the last included
    with torch.no_grad():
        switched_on.lm_head.weight.mul_(1e5)  # logits far beyond the cap
        logits = switched_on(torch.randint(0, 512, (1, 32)))
    assert 14.0 < logits.abs().max() <= 15.0


def test_compiled_training_has_no_graph_break_and_no_recompile_through_evaluation():
    """Dynamo's view of the CUDA path: the backend is aot_eager (forward and backward graphs, no C++
    compiler needed), which traces exactly what inductor would be given."""
    import torch._dynamo
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._dynamo.utils import counters

    ns = train_definitions(**ALL_ON)
    model = gpu_profile_model(ns, seq_len=128)
    torch._dynamo.reset()
    counters.clear()
    backend = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, backend=backend)
    optimizer = ns["Muon"]([p for n, p in model.named_parameters() if n.startswith("blocks.") and p.dim() == 2
                            and "ve_gate" not in n], 0.02, 0.95, 5, 0.1)
    x = torch.randint(0, 512, (2, 128))
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(3):
            loss = F.cross_entropy(compiled(x).view(-1, 512), x.roll(-1, 1).view(-1))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        # Evaluation as train.py runs it: evaluate_bpb scores (and hands over) the module itself,
        # eagerly, in eval mode and without grad; then training mode is back for nothing else.
        was_training = compiled.training
        compiled.eval()
        with torch.no_grad():
            eager = compiled._orig_mod(x)
        compiled.train(was_training)
        loss = F.cross_entropy(compiled(x).view(-1, 512), x.roll(-1, 1).view(-1))
    assert dict(counters["graph_break"]) == {}
    assert backend.frame_count == 1, f"{backend.frame_count} compiled frames (a recompile or a graph break)"
    assert torch.isfinite(eager).all() and torch.isfinite(loss)


def test_the_cuda_attention_branch_compiles_whole_and_matches_the_masked_sdpa():
    """On CUDA the short-window layers take flex_attention with a block mask under torch.compile. A
    CPU has no flex backward, so this traces the forward (no grad) with dynamo: no graph break, one
    frame, and the same logits as the eager masked SDPA that the harness scores."""
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._dynamo.utils import counters
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    ns = train_definitions(**ALL_ON)
    ns["create_block_mask"], ns["flex_attention"] = create_block_mask, flex_attention  # train.py imports them on CUDA
    model = gpu_profile_model(ns, seq_len=256)
    for block in model.blocks:  # attention's output projection starts at zero: give it something to carry
        torch.nn.init.normal_(block.attn.proj.weight, std=0.05)
    x = torch.randint(0, 512, (2, 256))
    torch._dynamo.reset()
    counters.clear()
    backend = CompileCounterWithBackend("aot_eager")
    with torch.no_grad():
        eager = model(x)
        model.use_flex_attention()
        assert [b.attn.block_mask is not None for b in model.blocks] == [True, True, True, False] * 2
        compiled = torch.compile(model, backend=backend)(x)
    assert dict(counters["graph_break"]) == {} and backend.frame_count == 1
    assert any(node.target is flex_attention or "flex_attention" in str(node.target)
               for graph in backend.graphs for node in graph.graph.nodes)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_the_flop_count_on_the_meta_device_equals_the_mfu_formula():
    """FlopCounterMode counts what the kernels compute: 6 FLOPs per weight per token for the matmuls,
    and the full T x T score matrix for every attention call (a mask does not skip work). The formula
    counts a sliding-window layer's attention by its window (flex_attention skips the blocks outside
    it), so the two agree exactly once that difference is added back."""
    from torch.utils.flop_counter import FlopCounterMode

    ns = train_definitions(**ALL_ON)
    vocab, seq_len, width, heads = 8192, 2048, ns["MODEL_DIM"], ns["N_HEAD"]
    with torch.device("meta"):
        model = ns["GPT"](vocab, seq_len, ns["DEPTH"], width, heads, ns["MLP_RATIO"])
    x = torch.zeros(1, seq_len, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x).view(-1, vocab), x.view(-1)).backward()
    counted_per_token = counter.get_total_flops() / seq_len
    head_dim = width // heads
    skipped = sum(12 * heads * head_dim * (seq_len - w) for w in model.windows)
    assert skipped > 0
    assert model.flops_per_token() == counted_per_token - skipped
    # and the parameter part is 6 per matmul weight: embeddings and scalars excluded
    lookups = vocab * width * (1 + len(model.value_embeds))
    matmul_weights = sum(p.numel() for p in model.parameters()) - lookups - 2 * ns["DEPTH"]
    assert model.flops_per_token() == 6 * matmul_weights + sum(12 * heads * head_dim * w for w in model.windows)


def test_sliding_window_mask_matches_flex_attention_and_is_causal():
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    ns = train_definitions()
    T, window = 256, 96
    mask = ns["sliding_window_mask"](T, window, "cpu")
    i = torch.arange(T)
    assert mask[i, i].all() and not mask.triu(1).any()  # itself yes, the future never
    assert mask.sum(1).max() == window and mask[T - 1, T - window] and not mask[T - 1, T - window - 1]
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, T, 32) for _ in range(3))
    block_mask = create_block_mask(lambda b, h, qi, kv: (qi >= kv) & (qi - kv < window), None, None, T, T,
                                   device="cpu")
    with torch.no_grad():  # flex_attention has no backward on a CPU; its forward is the reference kernel
        flex = flex_attention(q, k, v, block_mask=block_mask)
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(flex, sdpa, rtol=1e-4, atol=1e-5)


def reference_newton_schulz(g, steps):
    """Muon's quintic iteration, written as the polynomial it is, in float64."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.double()
    transpose = x.shape[0] > x.shape[1]
    if transpose:
        x = x.T
    x = x / x.norm()
    for _ in range(steps):
        s = x @ x.T
        x = a * x + b * s @ x + c * s @ s @ x
    return x.T if transpose else x


@pytest.mark.parametrize("shape", [(6, 10), (12, 5)])
def test_muon_update_matches_a_reference(shape):
    ns = train_definitions()
    torch.manual_seed(0)
    g = torch.randn(shape)
    ours = ns["orthogonalize"](g, 5)
    torch.testing.assert_close(ours.double(), reference_newton_schulz(g, 5), rtol=0, atol=1e-4)
    # ... which is close to the orthogonal factor U V^T of the SVD: same singular vectors, and every
    # singular value pushed from wherever it was into the quintic's band around 1
    u, _, vt = torch.linalg.svd(g.double(), full_matrices=False)
    projected = u.T @ ours.double() @ vt.T
    off_diagonal = projected - torch.diag(projected.diagonal())
    assert off_diagonal.abs().max() < 1e-3
    assert projected.diagonal().min() > 0.6 and projected.diagonal().max() < 1.25

    # Muon's whole step, 4 times: Nesterov momentum, orthogonalized, shape-scaled, decoupled decay
    p = torch.randn(shape, requires_grad=True)
    reference, buffer = p.detach().double().clone(), torch.zeros(shape, dtype=torch.float64)
    lr, momentum, decay = 0.05, 0.9, 0.1
    optimizer = ns["Muon"]([p], lr, momentum, 5, decay)
    for step in range(4):
        grad = torch.randn(shape)
        p.grad = grad.clone()
        optimizer.step()
        buffer = momentum * buffer + (1 - momentum) * grad.double()
        nesterov = (1 - momentum) * grad.double() + momentum * buffer
        reference = reference * (1 - lr * decay) - lr * max(1, shape[0] / shape[1]) ** 0.5 * \
            reference_newton_schulz(nesterov, 5)
    torch.testing.assert_close(p.detach().double(), reference, rtol=0, atol=1e-4)


def test_muon_orthogonalizes_same_shaped_matrices_together_as_it_would_one_by_one():
    ns = train_definitions()
    torch.manual_seed(1)
    params = [torch.randn(8, 4, requires_grad=True) for _ in range(3)] + [torch.randn(4, 8, requires_grad=True)]
    alone = [p.detach().clone().requires_grad_() for p in params]
    together = ns["Muon"](params, 0.05, 0.9, 5, 0.1)
    apart = [ns["Muon"]([p], 0.05, 0.9, 5, 0.1) for p in alone]
    assert len(together.by_shape) == 2
    for _ in range(3):
        grads = [torch.randn(p.shape) for p in params]
        for p, q, g in zip(params, alone, grads):
            p.grad, q.grad = g.clone(), g.clone()
        together.step()
        for optimizer in apart:
            optimizer.step()
    for p, q in zip(params, alone):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name, flops", [
    ("NVIDIA H100 80GB HBM3", 989.5e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H100 NVL", 835e12),
    ("NVIDIA H200", 989.5e12), ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A100 80GB PCIe", 312e12),
    ("NVIDIA L40S", 362e12), ("NVIDIA A10G", 125e12), ("NVIDIA L4", 121e12), ("NVIDIA B200", 2250e12),
    ("Tesla T4", None), ("Tesla V100-SXM2-16GB", None), ("", None),
])
def test_peak_flops_by_device_name(name, flops):
    assert prepare.peak_flops(name) == flops


def test_mfu_formula_reproduces_autoresearchs_published_baseline():
    """autoresearch's published baseline (50.3M parameters; 953 steps of 2^19 tokens in 300.1 s at
    39.80 % MFU of 989.5 TFLOP/s) implies 2.365e8 FLOPs per token. The GPU profile has the same sizes
    (depth 8, width 512, 4 heads, vocab 8192, SSSL windows; with its 4 value embeddings): its parameter count
    and its formula must land on the same figures (within 1.5 %: autoresearch prints the MFU of its
    last step, not the average)."""
    ns = train_definitions(**ALL_ON)
    with torch.device("meta"):
        model = ns["GPT"](8192, 2048, ns["DEPTH"], ns["MODEL_DIM"], ns["N_HEAD"], ns["MLP_RATIO"])
    implied = 0.398 * 989.5e12 * 300.1 / (953 * 2**19)
    assert abs(model.flops_per_token() / implied - 1) < 0.015
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 50.3


def test_the_gpu_benchmark_runs_the_real_job_and_prints_its_table(tmp_path):
    """benchmarks/gpu.py on a CPU (--allow-cpu): the same job and table a GPU run produces."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")}
    env.update(CUDA_VISIBLE_DEVICES="", AUTORESEARCH_CACHE_DIR=str(tmp_path / "cache"))
    process = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--allow-cpu", "--steps", "3",
                              "--data", "stdlib", "--no-write"], env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-2000:]
    rows = dict(line.strip("|").split("|")[:2] for line in process.stdout.splitlines() if line.startswith("| "))
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    assert rows["status"] == "ok" and rows["device"] == "cpu"
    assert 0 < float(rows["val_bpb (harness)"]) < 8.5
    assert int(rows["steps in the budget"]) == 4  # 3 counted + 1 uncounted
    assert any(key.startswith("evaluation on the validation split") for key in rows)
    no_gpu = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--no-write"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert no_gpu.returncode != 0 and "no CUDA device here" in no_gpu.stderr
