"""GPU memory by Modal GPU type, and the memory preflight's verdict. Pure: no torch, no I/O.

The preflight (prepare.py's "Memory preflight" section, run by gpu_jobs/preflight.py) measures the
bytes of live tensors while train.py runs its GPU profile on fake CPU tensors: the peak of training
(at least two optimizer steps) and the peak of the hand-over trace. `verdict` turns that into
fits / refused with the margin below.

Margin (what eager fake-CPU execution does not see):
  capacity  the memory the driver reports (GiB, as torch.cuda.get_device_properties().total_memory
            shows it) less CONTEXT_GIB for the CUDA context (~0.5 GiB), cuBLAS/cuDNN workspaces and
            the compiled kernels' code, which PyTorch's allocator never counts;
  training  x TRAIN_FACTOR = COMPILED_FRACTION x FRAGMENTATION. The preflight runs eager: every
            intermediate of the float32 logits path (cast, softcap, log-softmax), every pointwise
            result saved for backward, is a tensor of its own; torch.compile fuses and recomputes
            most of them. COMPILED_FRACTION is calibrated on the one published measurement of this
            architecture: karpathy/autoresearch's baseline (depth 8, width 512, vocab 8192, batch
            128 x 2048, torch.compile) peaks at 45,060 MiB (44.0 GiB) on an H100; the preflight
            estimates the same sizes at 95.2 GiB eager, a ratio of 0.46, rounded up to 0.5.
            FRAGMENTATION: the caching allocator's rounding and blocks reused at other sizes;
  hand-over x HANDOFF_FACTOR: one eager forward pass of EVAL_BATCH_SIZE rows in float32 (no
            compile); intermediates are freed as they die, so the allocator fragments as in training.
Not measured on a GPU here: the calibration is one published figure, and a change that compile
cannot fuse (a Python-level loop, say) uses more of its eager estimate than the baseline does.
"""

CONTEXT_GIB = 1.0
COMPILED_FRACTION = 0.5
FRAGMENTATION = 1.15
TRAIN_FACTOR = COMPILED_FRACTION * FRAGMENTATION
HANDOFF_FACTOR = FRAGMENTATION
GIB = 2**30

# Driver-reported total memory (GiB) by Modal GPU name. "H100" may be upgraded to an H200 by Modal
# (the smaller one counts); "A100" is the 40 GB card unless "A100-80GB" is named.
GPU_MEMORY_GIB = {
    "T4": 15.0, "L4": 22.0, "A10G": 22.0, "A10": 22.0, "L40S": 44.4,
    "A100": 39.4, "A100-40GB": 39.4, "A100-80GB": 79.1, "H100": 79.1, "H200": 139.8, "B200": 178.4,
}


def gpu_key(gpu):
    """The table's key for a configured GPU ("H100!", "h100:2", "a100-80gb" ...), or None."""
    name = str(gpu or "").strip().upper().partition(":")[0].rstrip("!")
    return name if name in GPU_MEMORY_GIB else None


def gpu_memory_gib(gpu):
    """Total memory of one GPU of this type (experiments use one), or None when unknown."""
    key = gpu_key(gpu)
    return GPU_MEMORY_GIB[key] if key else None


def needed_bytes(estimate):
    """Bytes the run needs on the GPU, margin included, and which part decides ("training" or "hand-over")."""
    train = float(estimate.get("train_peak_bytes") or 0) * TRAIN_FACTOR
    handoff = float(estimate.get("handoff_peak_bytes") or 0) * HANDOFF_FACTOR
    return (train, "training") if train >= handoff else (handoff, "hand-over")


def verdict(estimate, gpu, total_gib=None):
    """(fits: bool, reason: str, facts: dict) for a preflight estimate on `gpu` (total_gib: the
    capacity when known otherwise, e.g. measured on this machine). Unknown GPU: fits."""
    total = total_gib if total_gib is not None else gpu_memory_gib(gpu)
    needed, part = needed_bytes(estimate)
    facts = {"estimate_gib": round(needed / GIB, 2), "decided_by": part, "gpu": gpu,
             "train_peak_gib": round(float(estimate.get("train_peak_bytes") or 0) / GIB, 2),
             "handoff_peak_gib": round(float(estimate.get("handoff_peak_bytes") or 0) / GIB, 2)}
    if total is None:
        return True, f"memory preflight: no memory size known for GPU {gpu!r}; not checked", facts
    usable = total - CONTEXT_GIB
    facts["usable_gib"] = round(usable, 2)
    name = gpu_key(gpu) or str(gpu)
    if needed / GIB <= usable:
        return True, (f"memory preflight: estimated peak {needed / GIB:.1f} GiB ({part}) fits "
                      f"{usable:.1f} GiB usable on {name}"), facts
    fix = ("lower DEVICE_BATCH_SIZE (gradient accumulation keeps TOTAL_BATCH_SIZE)" if part == "training" else
           "the hand-over runs one float32 forward pass of 32 rows: a smaller vocabulary or model")
    return False, (f"memory preflight: estimated peak {needed / GIB:.1f} GiB > {usable:.1f} GiB usable on {name} "
                   f"({part}: {facts['train_peak_gib'] if part == 'training' else facts['handoff_peak_gib']:.1f} GiB "
                   f"estimated eager x {TRAIN_FACTOR if part == 'training' else HANDOFF_FACTOR:g}; {total:g} GiB less "
                   f"{CONTEXT_GIB:g} GiB CUDA context); {fix}, or a smaller model"), facts
