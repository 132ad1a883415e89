#!/usr/bin/env python3
"""Transformer++ training step in PyTorch at the ANCHORS.md 130M setting (d 768, 12 layers,
12 heads, RMSNorm, RoPE (NeoX halves), SwiGLU hidden 2048, tied embeddings, vocab 50280, B 8,
L 2048, bf16 autocast, fused AdamW lr 6e-4 β 0.9/0.95 wd 0.1, clip 1.0, SDPA cuDNN), timed on
this card beside seqbench. Prints one JSON line."""
import json, torch, torch.nn as nn, torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
dev = "cuda"
V, d, L, B, H, NL, HID = 50280, 768, 2048, 8, 12, 12, 2048
Dh = d // H
class RMSNorm(nn.Module):
    def __init__(s, n, eps=1e-5):
        super().__init__(); s.w = nn.Parameter(torch.ones(n)); s.eps = eps
    def forward(s, x):
        return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + s.eps).to(x.dtype) * s.w
def rope(x, cos, sin):
    a, b = x.chunk(2, -1)
    return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)
class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.n1, s.n2 = RMSNorm(d), RMSNorm(d)
        s.qkv, s.proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        s.gate, s.up, s.down = nn.Linear(d, HID, bias=False), nn.Linear(d, HID, bias=False), nn.Linear(HID, d, bias=False)
    def forward(s, x, cos, sin):
        q, k, v = s.qkv(s.n1(x)).view(B, L, 3, H, Dh).permute(2, 0, 3, 1, 4)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + s.proj(o.transpose(1, 2).reshape(B, L, d))
        h = s.n2(x)
        return x + s.down(F.silu(s.gate(h)) * s.up(h))
class LM(nn.Module):
    def __init__(s):
        super().__init__()
        s.emb = nn.Embedding(V, d); s.blocks = nn.ModuleList(Block() for _ in range(NL)); s.nf = RMSNorm(d)
    def forward(s, ids, cos, sin):
        x = s.emb(ids)
        for blk in s.blocks:
            x = blk(x, cos, sin)
        return F.linear(s.nf(x), s.emb.weight)
m = LM().to(dev)
params = sum(p.numel() for p in m.parameters())
opt = torch.optim.AdamW(m.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
inv = 1 / (10000 ** (torch.arange(0, Dh, 2, device=dev).float() / Dh))
f = torch.outer(torch.arange(L, device=dev).float(), inv)
cos, sin = f.cos()[None, None].bfloat16(), f.sin()[None, None].bfloat16()
ids, tg = torch.randint(0, V, (B, L), device=dev), torch.randint(0, V, (B, L), device=dev)
def step():
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = m(ids, cos, sin)
        loss = F.cross_entropy(logits.view(-1, V).float(), tg.view(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step(); opt.zero_grad(set_to_none=True)
for _ in range(3):
    step()
torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
ts = []
for _ in range(10):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); step(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e))
ts.sort()
ms = ts[len(ts) // 2]
print(json.dumps(dict(what="transformer++ train step (PyTorch)", gpu=torch.cuda.get_device_name(), torch=torch.__version__,
                      params=params, ms=ms, tokens_per_s=B * L / ms * 1e3,
                      peak_gib=torch.cuda.max_memory_allocated() / 2**30)), flush=True)
