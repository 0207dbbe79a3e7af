"""
Training script for autoresearch-bot: the ONE file experiments edit.
A small GPT (RoPE, RMSNorm, QK-norm, untied head) trained with AdamW for a fixed wall-clock budget;
the frozen harness (prepare.py) supplies the data and scores the model (val_bpb, lower is better).
Usage: python train.py   (no flags; the harness reads AUTORESEARCH_* environment variables)
"""

import contextlib
import math
import os
import sys
import time

t_start = time.time()  # total_seconds counts from here, importing torch included

import torch
import torch.nn as nn
import torch.nn.functional as F

from prepare import (GPU_PROFILE, MAX_SEQ_LEN, STEP_BUDGET, TIME_BUDGET, VOCAB_SIZE, evaluate_bpb, get_device,
                     make_dataloader, run_seed)

# ---------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------
# A name with a CPU_ twin is used only on CUDA; its CPU_ twin is used when there is no GPU.
# Names without a twin apply to both.

# GPU profile
DEPTH = 8  # transformer blocks
MODEL_DIM = 512  # residual stream width (channels)
N_HEAD = 4  # attention heads (head dim = MODEL_DIM / N_HEAD, must be even)
DEVICE_BATCH_SIZE = 64  # sequences per forward/backward pass
TOTAL_BATCH_SIZE = 262144  # tokens per optimizer step (gradient accumulation fills the gap)

# CPU profile
CPU_DEPTH = 2  # transformer blocks
CPU_MODEL_DIM = 128  # residual stream width (channels)
CPU_N_HEAD = 4  # attention heads
CPU_DEVICE_BATCH_SIZE = 32  # sequences per forward/backward pass
CPU_TOTAL_BATCH_SIZE = 4096  # tokens per optimizer step

# Both devices
MLP_RATIO = 4  # MLP hidden width as a multiple of the model width
LEARNING_RATE = 1e-3  # peak AdamW learning rate
WEIGHT_DECAY = 0.1  # AdamW decoupled weight decay, on block matrices only
ADAM_BETA1 = 0.9  # AdamW first-moment decay
ADAM_BETA2 = 0.95  # AdamW second-moment decay
ADAM_EPS = 1e-8  # AdamW denominator epsilon
GRAD_CLIP = 1.0  # max global gradient norm (0 = no clipping)
WARMUP_RATIO = 0.02  # fraction of the time budget spent warming the LR up
WARMDOWN_RATIO = 0.3  # fraction of the time budget spent decaying the LR at the end
FINAL_LR_FRAC = 0.0  # LR at the end of warmdown, as a fraction of the peak
ROPE_BASE = 10000.0  # RoPE frequency base
EMBED_INIT_STD = 1.0  # init std of the token embedding
HEAD_INIT_STD = 0.001  # init std of the output head (small: start near uniform logits)

# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def norm(x):
    return F.rms_norm(x, (x.size(-1),))  # RMSNorm without a learned gain


def rope_tables(seq_len, head_dim, base):
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, head_dim/2)
    return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]  # broadcast over (B, T, H, D/2)


def apply_rope(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, n_head):
        super().__init__()
        self.n_head, self.head_dim = n_head, dim // n_head
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).unbind(dim=2)
        q, k = norm(q), norm(k)  # QK-norm
        q, k = apply_rope(q, cos, sin).to(v.dtype), apply_rope(k, cos, sin).to(v.dtype)  # autocast may upcast norms
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, dim, ratio):
        super().__init__()
        self.fc = nn.Linear(dim, ratio * dim, bias=False)
        self.proj = nn.Linear(ratio * dim, dim, bias=False)

    def forward(self, x):
        return self.proj(F.relu(self.fc(x)).square())  # ReLU^2


class Block(nn.Module):
    def __init__(self, dim, n_head, mlp_ratio):
        super().__init__()
        self.attn = Attention(dim, n_head)
        self.mlp = MLP(dim, mlp_ratio)

    def forward(self, x, cos, sin):
        x = x + self.attn(norm(x), cos, sin)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, seq_len, depth, dim, n_head, mlp_ratio):
        super().__init__()
        if dim % n_head or (dim // n_head) % 2:
            raise ValueError(f"model width {dim} must split into {n_head} heads of even size")
        self.wte = nn.Embedding(vocab_size, dim)
        self.blocks = nn.ModuleList(Block(dim, n_head, mlp_ratio) for _ in range(depth))
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)  # untied from wte
        cos, sin = rope_tables(seq_len, dim // n_head, ROPE_BASE)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        nn.init.normal_(self.wte.weight, std=EMBED_INIT_STD)
        nn.init.normal_(self.lm_head.weight, std=HEAD_INIT_STD)
        for block in self.blocks:
            for linear in (block.attn.qkv, block.mlp.fc):
                nn.init.normal_(linear.weight, std=linear.in_features**-0.5)
            nn.init.zeros_(block.attn.proj.weight)  # residual branches start as identity
            nn.init.zeros_(block.mlp.proj.weight)

    def forward(self, idx):
        T = idx.size(1)
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = norm(self.wte(idx))
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.lm_head(norm(x)).float()  # logits (B, T, vocab), float32


# ---------------------------------------------------------------------------
# Optimizer
# ---------------------------------------------------------------------------


class AdamW:
    """The update of torch.optim.AdamW (decoupled weight decay, bias-corrected moments), written out.
    Used on CPU because importing torch.optim also imports torch._dynamo, ~1.4 s on 2 cores: a tenth
    of a 15 s experiment. On CUDA torch.optim.AdamW(fused=True) runs instead (torch.compile needs
    torch._dynamo anyway); keep the two in step when changing the update."""

    def __init__(self, param_groups, lr, betas, eps):
        self.param_groups = [dict(group, lr=lr) for group in param_groups]
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.moments = {p: (torch.zeros_like(p), torch.zeros_like(p)) for g in self.param_groups for p in g["params"]}

    @torch.no_grad()
    def step(self):
        self.steps += 1
        bias1, bias2 = 1 - self.beta1**self.steps, 1 - self.beta2**self.steps
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                m, v = self.moments[p]
                p.mul_(1 - lr * group["weight_decay"])
                m.lerp_(p.grad, 1 - self.beta1)
                v.mul_(self.beta2).addcmul_(p.grad, p.grad, value=1 - self.beta2)
                denom = (v.sqrt() / math.sqrt(bias2)).add_(self.eps)
                p.addcdiv_(m, denom, value=-lr / bias1)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None


# ---------------------------------------------------------------------------
# Setup: device, model, optimizer, data
# ---------------------------------------------------------------------------

device = get_device()
on_cuda = device == "cuda"
# GPU_PROFILE is set on CUDA, and also when the harness estimates the GPU profile's memory on a CPU.
if GPU_PROFILE:
    depth, model_dim, n_head = DEPTH, MODEL_DIM, N_HEAD
    device_batch_size, total_batch_size = DEVICE_BATCH_SIZE, TOTAL_BATCH_SIZE
    autocast_ctx = torch.autocast(device_type=device, dtype=torch.bfloat16)
else:
    depth, model_dim, n_head = CPU_DEPTH, CPU_MODEL_DIM, CPU_N_HEAD
    device_batch_size, total_batch_size = CPU_DEVICE_BATCH_SIZE, CPU_TOTAL_BATCH_SIZE
    autocast_ctx = contextlib.nullcontext()  # float32 on CPU
if on_cuda:
    torch.set_float32_matmul_precision("high")  # TF32 matmuls
else:
    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
torch.manual_seed(run_seed())

tokens_per_micro_batch = device_batch_size * MAX_SEQ_LEN
if total_batch_size % tokens_per_micro_batch:
    raise ValueError(f"total batch {total_batch_size} tokens is not a multiple of {device_batch_size} x {MAX_SEQ_LEN}")
grad_accum_steps = total_batch_size // tokens_per_micro_batch

model = GPT(VOCAB_SIZE, MAX_SEQ_LEN, depth, model_dim, n_head, MLP_RATIO).to(device)
num_params = sum(p.numel() for p in model.parameters())
num_flop_params = num_params - model.wte.weight.numel()  # an embedding lookup costs no matmul FLOPs
compiled = torch.compile(model) if on_cuda else model  # no compile on CPU: start-up would eat the budget

matrices = [p for n, p in model.named_parameters() if n.startswith("blocks.")]
others = [p for n, p in model.named_parameters() if not n.startswith("blocks.")]
param_groups = [dict(params=matrices, weight_decay=WEIGHT_DECAY), dict(params=others, weight_decay=0.0)]
betas = (ADAM_BETA1, ADAM_BETA2)
if on_cuda:
    optimizer = torch.optim.AdamW(param_groups, lr=LEARNING_RATE, betas=betas, eps=ADAM_EPS, fused=True)
else:
    optimizer = AdamW(param_groups, lr=LEARNING_RATE, betas=betas, eps=ADAM_EPS)

train_loader = make_dataloader("train", device_batch_size, MAX_SEQ_LEN, device)
x, y = next(train_loader)

print(f"device: {device} | params: {num_params / 1e6:.2f}M | depth: {depth} | width: {model_dim} | "
      f"tokens/step: {total_batch_size:,} | grad accum: {grad_accum_steps} | budget: {TIME_BUDGET:.0f}s", flush=True)


def get_lr_multiplier(progress):
    """LR as a fraction of the peak, by the fraction of the time budget used so far."""
    if progress < WARMUP_RATIO:
        return 0.1 + 0.9 * progress / WARMUP_RATIO  # from 10%, so the first steps are not wasted
    if progress < 1.0 - WARMDOWN_RATIO:
        return 1.0
    remaining = max(0.0, 1.0 - progress) / WARMDOWN_RATIO
    return FINAL_LR_FRAC + (1.0 - FINAL_LR_FRAC) * remaining


# ---------------------------------------------------------------------------
# Training loop: stops when the counted training time reaches TIME_BUDGET (or, when the bot
# sets a step budget, after STEP_BUDGET counted steps: the schedule then follows steps)
# ---------------------------------------------------------------------------

# The first steps are not counted: on CUDA they include torch.compile (10 steps, as in
# autoresearch); on CPU the first step pays one-time allocation and thread start-up.
uncounted_steps = 10 if on_cuda else 1
compile_time = 0.0  # the first step on CUDA: torch.compile builds the forward and backward graphs
training_time = 0.0
smooth_loss = 0.0
last_print = 0.0
step = 0
while True:
    if on_cuda:
        torch.cuda.synchronize()
    t0 = time.time()
    for _ in range(grad_accum_steps):
        with autocast_ctx:
            logits = compiled(x)
        loss = F.cross_entropy(logits.view(-1, VOCAB_SIZE), y.view(-1))
        (loss / grad_accum_steps).backward()
        x, y = next(train_loader)  # fetch the next batch while the GPU works
    counted = max(0, step - uncounted_steps)
    progress = min(counted / STEP_BUDGET if STEP_BUDGET else training_time / TIME_BUDGET, 1.0)
    lr = LEARNING_RATE * get_lr_multiplier(progress)
    for group in optimizer.param_groups:
        group["lr"] = lr
    if GRAD_CLIP > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    train_loss = loss.item()  # waits for the step to finish
    if math.isnan(train_loss) or train_loss > 100:
        print(f"FAIL: loss is {train_loss} at step {step}", flush=True)
        sys.exit(1)
    dt = time.time() - t0
    if step >= uncounted_steps:
        training_time += dt
    elif step == 0 and on_cuda:
        compile_time = dt

    smooth_loss = 0.9 * smooth_loss + 0.1 * train_loss  # EMA of the loss, debiased below
    done = step >= uncounted_steps and (counted + 1 >= STEP_BUDGET if STEP_BUDGET else training_time >= TIME_BUDGET)
    if done or step < uncounted_steps or time.time() - last_print >= 0.5:  # at most ~2 lines/s
        last_print = time.time()
        pct = 100 * min((counted + 1) / STEP_BUDGET if STEP_BUDGET else training_time / TIME_BUDGET, 1.0)
        print(f"step {step:05d} ({pct:.1f}%) | loss: {smooth_loss / (1 - 0.9 ** (step + 1)):.6f} | lr: {lr:.2e} | "
              f"dt: {dt * 1000:.0f}ms | tok/sec: {int(total_batch_size / dt):,} | "
              f"remaining: {max(0.0, TIME_BUDGET - training_time):.0f}s", flush=True)
    step += 1
    if done:
        break

# ---------------------------------------------------------------------------
# Evaluation (by the frozen harness) and summary
# ---------------------------------------------------------------------------

with autocast_ctx:
    val_bpb = evaluate_bpb(compiled, device_batch_size)

total_tokens = step * total_batch_size
if on_cuda:
    peak_vram_mb = torch.cuda.max_memory_allocated() / 1024**2
    h100_bf16_peak_flops = 989.5e12  # dense bf16 peak of an H100 SXM
    counted_tokens = (step - uncounted_steps) * total_batch_size  # tokens of the timed steps
    mfu = 100 * 6 * num_flop_params * counted_tokens / training_time / h100_bf16_peak_flops
else:
    peak_vram_mb, mfu = 0.0, 0.0  # no VRAM on CPU; peak_rss_mb (resident memory) is printed instead
print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {training_time:.1f}")
print(f"compile_seconds:  {compile_time:.1f}")
print(f"total_seconds:    {time.time() - t_start:.1f}")
print(f"peak_vram_mb:     {peak_vram_mb:.1f}")
print(f"mfu_percent:      {mfu:.2f}")
print(f"total_tokens_M:   {total_tokens / 1e6:.1f}")
print(f"num_steps:        {step}")
print(f"num_params_M:     {num_params / 1e6:.1f}")
print(f"depth:            {depth}")
print(f"device:           {device}")
if not on_cuda and sys.platform.startswith("linux"):
    import resource

    print(f"peak_rss_mb:      {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")  # KiB on Linux
sys.stdout.flush()
