"""
Training script for autoresearch-bot: the ONE file experiments edit.
A small GPT (RoPE, RMSNorm, QK-norm, sliding-window attention, residual scalars, untied head; value
embeddings and a logit softcap built in, off) trained with Muon + AdamW for a fixed wall-clock budget;
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
                     make_dataloader, peak_flops, run_seed)

# ---------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------
# A name with a CPU_ twin is used only on the GPU profile; its CPU_ twin is used when there is no GPU.
# Names without a twin apply to both.

# GPU profile (the sizes of karpathy/autoresearch's baseline)
DEPTH = 8  # transformer blocks
MODEL_DIM = 512  # residual stream width (channels)
N_HEAD = 4  # attention heads (head dim = MODEL_DIM / N_HEAD, must be even)
DEVICE_BATCH_SIZE = 128  # sequences per forward/backward pass
TOTAL_BATCH_SIZE = 524288  # tokens per optimizer step (gradient accumulation fills the gap)

# CPU profile
CPU_DEPTH = 2  # transformer blocks
CPU_MODEL_DIM = 128  # residual stream width (channels)
CPU_N_HEAD = 4  # attention heads
CPU_DEVICE_BATCH_SIZE = 32  # sequences per forward/backward pass
CPU_TOTAL_BATCH_SIZE = 4096  # tokens per optimizer step

# Both profiles: architecture
MLP_RATIO = 4  # MLP hidden width as a multiple of the model width
SHORT_WINDOW = 0.5  # sliding attention window of the short layers, as a fraction of the context (1 = full)
LONG_EVERY = 4  # every LONG_EVERY-th layer (counted from the last, which always is) sees the full context
VALUE_EMBED_EVERY = 0  # every n-th layer (counted from the last) adds a gated value embedding to v (0 = none)
RESIDUAL_SCALARS = True  # learned per-layer scalars mix the residual stream with the first layer's input
X0_INIT = 0.1  # initial weight of the first layer's input in every layer's residual stream
LOGIT_SOFTCAP = 0.0  # logits = LOGIT_SOFTCAP * tanh(logits / LOGIT_SOFTCAP) (0 = off)
ROPE_BASE = 10000.0  # RoPE frequency base
EMBED_INIT_STD = 1.0  # init std of the token embedding
HEAD_INIT_STD = 0.001  # init std of the output head (small: start near uniform logits)

# Both profiles: optimization
MUON = True  # Muon for the blocks' matrices (False: AdamW at LEARNING_RATE, as for everything else)
MATRIX_LR = 0.04  # Muon learning rate of the blocks' matrices
MUON_MOMENTUM = 0.95  # Muon's Nesterov momentum
MUON_NS_STEPS = 5  # Newton-Schulz iterations that orthogonalize each Muon update
LEARNING_RATE = 0.004  # peak AdamW learning rate (head; embeddings and scalars below; matrices without Muon)
EMBEDDING_LR = 0.6  # AdamW learning rate of the token and value embeddings
SCALAR_LR = 0.5  # AdamW learning rate of the residual scalars and value-embedding gates
WEIGHT_DECAY = 0.1  # decoupled weight decay, on block matrices only
ADAM_BETA1 = 0.8  # AdamW first-moment decay
ADAM_BETA2 = 0.95  # AdamW second-moment decay
ADAM_EPS = 1e-8  # AdamW denominator epsilon
GRAD_CLIP = 1.0  # max global gradient norm (0 = no clipping)
WARMUP_RATIO = 0.0  # fraction of the time budget spent warming the LR up
WARMDOWN_RATIO = 0.5  # fraction of the time budget spent decaying the LR at the end
FINAL_LR_FRAC = 0.0  # LR at the end of warmdown, as a fraction of the peak

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


def window_sizes(depth, seq_len):
    """Tokens each layer attends to (itself included): the last layer and every LONG_EVERY-th before
    it see the whole context, the others a sliding window of SHORT_WINDOW of it."""
    short = max(1, int(seq_len * SHORT_WINDOW))
    return [seq_len if (depth - 1 - i) % max(1, LONG_EVERY) == 0 else short for i in range(depth)]


def has_value_embed(layer, depth):
    return VALUE_EMBED_EVERY > 0 and (depth - 1 - layer) % VALUE_EMBED_EVERY == 0


def sliding_window_mask(seq_len, window, device):
    """Causal mask of a sliding window, from ATen ops (so the handed-over graph carries no T x T constant)."""
    i = torch.arange(seq_len, device=device)
    distance = i[:, None] - i[None, :]
    return (distance >= 0) & (distance < window)


class Attention(nn.Module):
    def __init__(self, dim, n_head, window, value_embed):
        super().__init__()
        self.n_head, self.head_dim, self.window = n_head, dim // n_head, window
        self.q = nn.Linear(dim, dim, bias=False)  # q, k and v apart: Muon orthogonalizes each on its own
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.ve_gate = nn.Linear(min(32, dim), n_head, bias=False) if value_embed else None
        self.block_mask = None  # set by GPT.use_flex_attention on CUDA

    def forward(self, x, ve, cos, sin):
        B, T, C = x.shape
        shape = (B, T, self.n_head, self.head_dim)
        q, k, v = self.q(x).view(shape), self.k(x).view(shape), self.v(x).view(shape)
        if ve is not None:  # value embedding, gated per head (gate 1 at init)
            gate = 2 * torch.sigmoid(self.ve_gate(x[..., :self.ve_gate.in_features]))
            v = v + gate.unsqueeze(-1) * ve.view(shape).to(v.dtype)
        q, k = norm(q), norm(k)  # QK-norm
        q, k = apply_rope(q, cos, sin).to(v.dtype), apply_rope(k, cos, sin).to(v.dtype)  # autocast may upcast norms
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if self.window >= T:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif self.block_mask is not None and torch.compiler.is_compiling():
            y = flex_attention(q, k, v, block_mask=self.block_mask)  # skips the blocks outside the window
        else:  # eager (CPU, and the model handed to the harness): the same window as an explicit mask
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=sliding_window_mask(T, self.window, x.device))
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, dim, ratio):
        super().__init__()
        self.fc = nn.Linear(dim, ratio * dim, bias=False)
        self.proj = nn.Linear(ratio * dim, dim, bias=False)

    def forward(self, x):
        return self.proj(F.relu(self.fc(x)).square())  # ReLU^2


class Block(nn.Module):
    def __init__(self, dim, n_head, mlp_ratio, window, value_embed):
        super().__init__()
        self.attn = Attention(dim, n_head, window, value_embed)
        self.mlp = MLP(dim, mlp_ratio)

    def forward(self, x, ve, cos, sin):
        x = x + self.attn(norm(x), ve, cos, sin)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, seq_len, depth, dim, n_head, mlp_ratio):
        super().__init__()
        if dim % n_head or (dim // n_head) % 2:
            raise ValueError(f"model width {dim} must split into {n_head} heads of even size")
        self.seq_len, self.n_head = seq_len, n_head
        self.windows = window_sizes(depth, seq_len)
        self.wte = nn.Embedding(vocab_size, dim)
        self.value_embeds = nn.ModuleDict({str(i): nn.Embedding(vocab_size, dim)
                                           for i in range(depth) if has_value_embed(i, depth)})
        self.blocks = nn.ModuleList(Block(dim, n_head, mlp_ratio, self.windows[i], str(i) in self.value_embeds)
                                    for i in range(depth))
        self.resid_lambdas = nn.Parameter(torch.ones(depth)) if RESIDUAL_SCALARS else None
        self.x0_lambdas = nn.Parameter(torch.full((depth,), X0_INIT)) if RESIDUAL_SCALARS else None
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)  # untied from wte
        cos, sin = rope_tables(seq_len, dim // n_head, ROPE_BASE)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        nn.init.normal_(self.wte.weight, std=EMBED_INIT_STD)
        nn.init.normal_(self.lm_head.weight, std=HEAD_INIT_STD)
        for ve in self.value_embeds.values():
            nn.init.normal_(ve.weight, std=ve.embedding_dim**-0.5)
        for block in self.blocks:
            for linear in (block.attn.q, block.attn.k, block.attn.v, block.mlp.fc):
                nn.init.normal_(linear.weight, std=linear.in_features**-0.5)
            nn.init.zeros_(block.attn.proj.weight)  # residual branches start as identity
            nn.init.zeros_(block.mlp.proj.weight)
            if block.attn.ve_gate is not None:
                nn.init.zeros_(block.attn.ve_gate.weight)

    def use_flex_attention(self):
        """On CUDA the short-window layers run flex_attention under torch.compile, which skips the
        blocks of the score matrix outside the window (a masked SDPA would compute them all)."""
        masks = {}
        for block, window in zip(self.blocks, self.windows):
            if window < self.seq_len and window not in masks:
                def in_window(b, h, q, kv, window=window):
                    return (q >= kv) & (q - kv < window)
                masks[window] = create_block_mask(in_window, None, None, self.seq_len, self.seq_len,
                                                  device=self.wte.weight.device)
            block.attn.block_mask = masks.get(window)

    def flops_per_token(self):
        """Training FLOPs per token in karpathy/autoresearch's convention: 6 per weight of every matmul
        (embedding lookups and scalars excluded) plus 12 * heads * head_dim * attended tokens per layer."""
        lookups = self.wte.weight.numel() + sum(ve.weight.numel() for ve in self.value_embeds.values())
        scalars = sum(p.numel() for p in (self.resid_lambdas, self.x0_lambdas) if p is not None)
        matmul_weights = sum(p.numel() for p in self.parameters()) - lookups - scalars
        head_dim = self.lm_head.in_features // self.n_head
        return 6 * matmul_weights + sum(12 * self.n_head * head_dim * min(w, self.seq_len) for w in self.windows)

    def forward(self, idx):
        T = idx.size(1)
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = x0 = norm(self.wte(idx))
        for i, block in enumerate(self.blocks):
            if self.resid_lambdas is not None:
                x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, cos, sin)
        logits = self.lm_head(norm(x)).float()  # (B, T, vocab), float32
        if LOGIT_SOFTCAP > 0:
            logits = LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)
        return logits


# ---------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------


class AdamW:
    """The update of torch.optim.AdamW (decoupled weight decay, bias-corrected moments), written out.
    Used on CPU because importing torch.optim also imports torch._dynamo, ~1.4 s on 2 cores: a tenth
    of a 15 s experiment. On CUDA torch.optim.AdamW(fused=True) runs instead (torch.compile needs
    torch._dynamo anyway); keep the two in step when changing the update."""

    def __init__(self, param_groups, lr, betas, eps):
        self.param_groups = [dict(group, lr=group.get("lr", lr)) for group in param_groups]
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


def orthogonalize(g, steps):
    """Newton-Schulz iteration towards U V^T of g's SVD (Muon's quintic: it pushes every singular value
    into roughly [0.7, 1.2] in a few matmuls, far cheaper than an SVD). bf16 on CUDA, as Muon does."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.to(torch.bfloat16 if g.is_cuda and torch.cuda.is_bf16_supported() else torch.float32)
    wide = x.size(-2) <= x.size(-1)
    x = x if wide else x.mT  # iterate on the smaller Gram matrix
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # singular values into (0, 1], matrix by matrix
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.mT).to(g.dtype)


class Muon:
    """MomentUm Orthogonalized by Newton-schulz (Keller Jordan, 2024), for 2-D weight matrices: Nesterov
    momentum, then the update's orthogonalization, scaled by sqrt(max(1, rows / cols)); decoupled
    weight decay as AdamW's. Matrices of one shape are orthogonalized together, as one batch: a few
    large matmuls instead of many small ones."""

    def __init__(self, params, lr, momentum, ns_steps, weight_decay):
        self.param_groups = [dict(params=list(params), lr=lr, weight_decay=weight_decay)]
        self.momentum, self.ns_steps = momentum, ns_steps
        self.buffers = {p: torch.zeros_like(p) for p in self.param_groups[0]["params"]}
        self.by_shape = {}
        for p in self.param_groups[0]["params"]:
            self.by_shape.setdefault(tuple(p.shape), []).append(p)

    @torch.no_grad()
    def step(self):
        group = self.param_groups[0]
        for (rows, cols), params in self.by_shape.items():
            params = [p for p in params if p.grad is not None]
            if not params:
                continue
            updates = []
            for p in params:
                self.buffers[p].lerp_(p.grad, 1 - self.momentum)
                updates.append(p.grad.lerp(self.buffers[p], self.momentum))  # Nesterov
            orthogonal = orthogonalize(torch.stack(updates), self.ns_steps)
            for p, update in zip(params, orthogonal.unbind(0)):
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-group["lr"] * max(1.0, rows / cols) ** 0.5)

    def zero_grad(self, set_to_none=True):
        for p in self.param_groups[0]["params"]:
            p.grad = None


# ---------------------------------------------------------------------------
# Setup: device, model, optimizer, data
# ---------------------------------------------------------------------------

device = get_device()
on_cuda = device == "cuda"
# GPU_PROFILE is set on CUDA, and also when the harness estimates the GPU profile's memory on a CPU.
bf16 = GPU_PROFILE and (not on_cuda or torch.cuda.is_bf16_supported())
if GPU_PROFILE:
    depth, model_dim, n_head = DEPTH, MODEL_DIM, N_HEAD
    device_batch_size, total_batch_size = DEVICE_BATCH_SIZE, TOTAL_BATCH_SIZE
else:
    depth, model_dim, n_head = CPU_DEPTH, CPU_MODEL_DIM, CPU_N_HEAD
    device_batch_size, total_batch_size = CPU_DEVICE_BATCH_SIZE, CPU_TOTAL_BATCH_SIZE
# bf16 autocast on the GPU profile; float32 on CPU, and on GPUs without bf16 (T4, V100): slower, but
# fp16 would need loss scaling that this loop does not have.
autocast_ctx = torch.autocast(device_type=device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
if GPU_PROFILE and not bf16:
    print(f"warning: {torch.cuda.get_device_name()} has no bf16: training in float32", flush=True)
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
flops_per_token = model.flops_per_token()
if on_cuda:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    model.use_flex_attention()
compiled = torch.compile(model) if on_cuda else model  # no compile on CPU: start-up would eat the budget

named = dict(model.named_parameters())
matrices = [p for n, p in named.items() if n.startswith("blocks.") and p.dim() == 2 and "ve_gate" not in n]
embeddings = [p for n, p in named.items() if n.startswith(("wte.", "value_embeds."))]
scalars = [p for n, p in named.items() if "lambdas" in n or "ve_gate" in n]
head = [named["lm_head.weight"]]
adam_groups = [dict(params=embeddings, lr=EMBEDDING_LR, weight_decay=0.0),
               dict(params=scalars, lr=SCALAR_LR, weight_decay=0.0),
               dict(params=head, lr=LEARNING_RATE, weight_decay=0.0)]
if not MUON:
    adam_groups.append(dict(params=matrices, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY))
adam_groups = [g for g in adam_groups if g["params"]]
betas = (ADAM_BETA1, ADAM_BETA2)
if on_cuda:
    adamw = torch.optim.AdamW(adam_groups, lr=LEARNING_RATE, betas=betas, eps=ADAM_EPS, fused=True)
else:
    adamw = AdamW(adam_groups, lr=LEARNING_RATE, betas=betas, eps=ADAM_EPS)
optimizers = [adamw] + ([Muon(matrices, MATRIX_LR, MUON_MOMENTUM, MUON_NS_STEPS, WEIGHT_DECAY)] if MUON else [])
for optimizer in optimizers:
    for group in optimizer.param_groups:
        group["peak_lr"] = group["lr"]

train_loader = make_dataloader("train", device_batch_size, MAX_SEQ_LEN, device)
x, y = next(train_loader)

print(f"device: {device} | params: {num_params / 1e6:.2f}M | depth: {depth} | width: {model_dim} | "
      f"windows: {model.windows} | tokens/step: {total_batch_size:,} | grad accum: {grad_accum_steps} | "
      f"budget: {TIME_BUDGET:.0f}s", flush=True)


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
    lr_multiplier = get_lr_multiplier(progress)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = group["peak_lr"] * lr_multiplier
    if GRAD_CLIP > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    for optimizer in optimizers:
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
        print(f"step {step:05d} ({pct:.1f}%) | loss: {smooth_loss / (1 - 0.9 ** (step + 1)):.6f} | "
              f"lrm: {lr_multiplier:.2f} | "
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
device_name = torch.cuda.get_device_name() if on_cuda else "cpu"
peak = peak_flops(device_name) if on_cuda else None
if on_cuda:
    peak_vram_mb = torch.cuda.max_memory_allocated() / 1024**2
    counted_tokens = (step - uncounted_steps) * total_batch_size  # tokens of the timed steps
    mfu = 100 * flops_per_token * counted_tokens / training_time / peak if peak and training_time > 0 else 0.0
    print(f"{device_name}: {flops_per_token * counted_tokens / training_time / 1e12:.1f} TFLOP/s"
          + (f" of a {peak / 1e12:.0f} TFLOP/s bf16 peak" if peak else " (peak unknown: MFU not computed)"), flush=True)
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
print(f"device_name:      {device_name}")
if not on_cuda and os.path.exists("/proc/self/status"):  # this process's peak (ru_maxrss would add its parent's)
    high_water_kib = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    print(f"peak_rss_mb:      {int(high_water_kib) / 1024:.1f}")
sys.stdout.flush()
