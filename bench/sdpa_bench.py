#!/usr/bin/env python3
"""Times PyTorch's scaled_dot_product_attention (flash backend, bf16, causal) for
`longctx-bench --device cuda attention`, which runs it in the same session to put
longctx's CUDA attention next to it. Prints one line `sdpa <TFLOP/s>` (causal
FLOPs: 2 * 2 * S^2 / 2 * heads * dim) or nothing when torch with CUDA is missing."""
import argparse
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--reps", type=int, default=9)
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return 1
    if not torch.cuda.is_available():
        return 1
    dev = torch.device("cuda", a.device)
    g = torch.Generator(device=dev).manual_seed(1)
    q = torch.randn(1, a.heads, a.seq, a.dim, device=dev, dtype=torch.bfloat16, generator=g)
    k = torch.randn(1, a.kv_heads, a.seq, a.dim, device=dev, dtype=torch.bfloat16, generator=g)
    v = torch.randn(1, a.kv_heads, a.seq, a.dim, device=dev, dtype=torch.bfloat16, generator=g)

    def run():
        try:  # GQA without copies where this torch has it (2.5+)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        except TypeError:  # older torch: the same K/V repeated per query head
            rep = a.heads // a.kv_heads
            return F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                                  is_causal=True)

    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        ctx = sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    except ImportError:
        ctx = torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False)
    with ctx:
        run()
        run()
        torch.cuda.synchronize(dev)
        times = []
        for _ in range(max(a.reps, 1)):
            e0 = torch.cuda.Event(enable_timing=True)
            e1 = torch.cuda.Event(enable_timing=True)
            e0.record()
            run()
            e1.record()
            e1.synchronize()
            times.append(e0.elapsed_time(e1) * 1e-3)
    times.sort()
    t = times[len(times) // 2]
    flops = 2.0 * a.seq * a.seq * a.heads * a.dim
    print("sdpa %.3f" % (flops / t * 1e-12))
    return 0


if __name__ == "__main__":
    sys.exit(main())
