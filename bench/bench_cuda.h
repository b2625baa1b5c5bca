/* longctx-bench --device cuda (bench_cuda.c, built when the CUDA backend is) */
#ifndef LCX_BENCH_CUDA_H
#define LCX_BENCH_CUDA_H

#include <stdint.h>

typedef struct lcx_bench_cuda_opts {
    int device;          /* CUDA device ordinal */
    int reps;
    double mb;           /* working set of the streaming ops, MiB */
    int quick;
    int want_rope, want_merge, want_logprobs, want_lora, want_attention, want_s2;
    const int64_t *tokens; /* lora token counts (n_tokens 0 = defaults) */
    int n_tokens;
    const int *ranks;    /* lora: the first rank is used (n_ranks 0 = 16) */
    int n_ranks;
    const int64_t *seqs; /* attention prefill lengths (n_seqs 0 = defaults) */
    int n_seqs;
} lcx_bench_cuda_opts;

/* 0 on success, 1 without a CUDA device, 2 on a bad device ordinal */
int lcx_bench_cuda(const lcx_bench_cuda_opts *o);

#endif
