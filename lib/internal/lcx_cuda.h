/* Private: the CUDA backend's host interface (the .cu files in kernels/cuda), usable
 * from C and C++. Present only in builds with LCX_HAVE_CUDA. Every call
 * checks every CUDA result and maps failures to LCX_E_DEVICE with the CUDA
 * error text in lcx_last_error(). */
#ifndef LCX_CUDA_H
#define LCX_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "longctx/common.h"
#include "longctx/lora.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lcx_cuda_state lcx_cuda_state;

lcx_status lcx_fail(lcx_status status, const char *fmt, ...);

/* Select `device`, use `stream` (NULL: create one). */
lcx_status lcx_cuda_open(int device, void *stream, lcx_cuda_state **out);
void lcx_cuda_close(lcx_cuda_state *s);
lcx_status lcx_cuda_sync(lcx_cuda_state *s);

/* dst = convert(src) over an nd-dim strided index space (nd <= 4, innermost
 * stride 1 on both), queued on the state's stream. */
lcx_status lcx_cuda_convert(lcx_cuda_state *s, const void *src, lcx_dtype sdt, void *dst,
                            lcx_dtype ddt, int nd, const int64_t *shape, const int64_t *sstride,
                            const int64_t *dstride);

/* out = sum_i coeffs[i] * inputs[i] (validated lcx_merge_weights arguments,
 * n <= 64, tensor data in device memory), queued on the state's stream. */
lcx_status lcx_cuda_merge(lcx_cuda_state *s, int32_t n, const lcx_tensor *inputs, const float *coeffs,
                          const lcx_tensor *out);

/* out[r] = log-probability of targets[r] in row r of logits over `rows` rows
 * of `vocab` entries, or, with ext_logits, the ext minus base difference
 * (validated lcx_token_logprobs / lcx_token_impact arguments; tensor data,
 * targets and out in device memory). Waits for the stream to check the
 * targets (LCX_E_INVALID, nothing written, for one >= vocab), then queues
 * the kernel; while the stream is being captured into a graph the check
 * stays on the device and a bad target makes the kernel write nothing.
 * `op` names the public call in error messages. */
lcx_status lcx_cuda_token_logprobs(lcx_cuda_state *s, const char *op, const lcx_tensor *logits,
                                   const lcx_tensor *ext_logits, const int64_t *targets, float *out,
                                   int64_t rows, int64_t vocab);

/* RoPE on device: mode 0 applies precise angles (turns, and turns0 below
 * n_hat, magnitude a at p >= n_hat and 1 below), mode 1 the HF float32 path
 * (theta, theta0 below n_hat), mode 2 re-rotates by the turn difference
 * (turns/turns0 of `to` below n_hat, from_turns/from_turns0 of `from` below
 * n_hat_from, magnitude 1), mode 3 shifts every position by the rotation
 * of turns (delta * turns, exact mod one turn; turns0 = turns, n_hat 0,
 * magnitude 1). The tables are host arrays of n_pairs (<= 512) values,
 * copied into kernel arguments during the call. */
typedef struct lcx_cuda_rope_desc {
    int32_t mode;
    int32_t n_pairs;
    int32_t interleaved;
    float a;
    int64_t n_hat, n_hat_from; /* 0: never plain */
    const uint64_t *turns, *turns0, *from_turns, *from_turns0;
    const float *theta, *theta0;
} lcx_cuda_rope_desc;

/* Rotate q and/or k (validated lcx_rope_apply / lcx_rope_rerotate arguments,
 * [batch][seq][heads][head_dim] views, tensor data and positions in device
 * memory; positions NULL means p = s). With positions, waits for the stream
 * to check them (LCX_E_INVALID, nothing written, for one outside
 * [0, 2^31-1]), then queues the kernel; while the stream is being captured
 * the check stays on the device and a bad position makes the kernel write
 * nothing. `op` names the public call. */
lcx_status lcx_cuda_rope(lcx_cuda_state *s, const char *op, const lcx_cuda_rope_desc *d, const lcx_tensor *q,
                         const lcx_tensor *k, const int64_t *positions, int64_t batch, int64_t seq);

/* Position samplers (validated lcx_pose_sample_batch / lcx_randpos_sample_batch
 * arguments; doc_lens on the host, outputs in device memory): row r draws
 * from the Philox stream (seed, stream + r) as the CPU does. Queued on the
 * state's stream; the host array is passed in kernel arguments, so it may
 * change once the call returns. */
lcx_status lcx_cuda_pose_batch(lcx_cuda_state *s, const char *op, uint64_t seed, uint64_t stream, int64_t rows,
                               const int64_t *doc_lens, int64_t window_len, int64_t target_len, int32_t n_chunks,
                               int64_t *index_out, int64_t *pos_out, int64_t *n_out);
lcx_status lcx_cuda_randpos_batch(lcx_cuda_state *s, const char *op, uint64_t seed, uint64_t stream, int64_t rows,
                                  int64_t n, int64_t target_len, int64_t *pos_out);

/* LoRA on device (validated lcx_lora_linear / lcx_lora_batched /
 * lcx_lora_merge arguments; tensor data in device memory, the tensor
 * descriptors and the adapter array in host memory), queued on the state's
 * stream; f32 accumulation, one rounding of the output, like the CPU.
 * lcx_cuda_lora_batched takes the tokens grouped by adapter on the host:
 * idx[start[i] .. start[i + 1]) are the tokens of adapter i in order
 * (start has n_adapters + 1 entries); it uploads them through the pinned
 * staging buffer. */
lcx_status lcx_cuda_lora_linear(lcx_cuda_state *s, const lcx_tensor *x, const lcx_tensor *w, const lcx_tensor *bias,
                                const lcx_tensor *a, const lcx_tensor *b, float scale, const lcx_tensor *y,
                                int accumulate);
lcx_status lcx_cuda_lora_batched(lcx_cuda_state *s, const lcx_tensor *x, const lcx_lora_adapter *adapters,
                                 int32_t n_adapters, const int32_t *idx, const int32_t *start, const lcx_tensor *y);
lcx_status lcx_cuda_lora_merge(lcx_cuda_state *s, const lcx_tensor *w, const lcx_tensor *a, const lcx_tensor *b,
                               float scale);

/* Attention on device (validated lcx_attention_forward /
 * lcx_attention_s2_forward arguments; q, k, v, out data and lse in device
 * memory, cu_q/cu_k on the host, copied during the call), queued on the
 * state's stream. s2: 0 off, else 1 + lcx_s2_mode with group g, first shifted
 * head h0 and the roll amounts fwd/back of lib/attention.c. `op` names the
 * public call in error messages. */
typedef struct lcx_cuda_attn_desc {
    const char *op;
    int64_t B, Sq, Sk, H, Hkv, D, Dv;
    float scale, softcap; /* scale resolved (never 0) */
    int32_t causal;
    int64_t window;       /* < 0: none */
    const int64_t *cu_q, *cu_k;
    int64_t n_seqs;
    int32_t s2;
    int64_t g, h0, fwd, back;
    int32_t pv16; /* tensor-core kernel: P rounded to 16 bits for P V (no hi/lo split) */
} lcx_cuda_attn_desc;
lcx_status lcx_cuda_attention(lcx_cuda_state *s, const lcx_cuda_attn_desc *d, const lcx_tensor *q,
                              const lcx_tensor *k, const lcx_tensor *v, const lcx_tensor *out, float *lse);
/* lcx_attention_merge on device (validated arguments, device memory). */
lcx_status lcx_cuda_attention_merge(lcx_cuda_state *s, const lcx_tensor *out_a, const float *lse_a,
                                    const lcx_tensor *out_b, const float *lse_b, const lcx_tensor *out, float *lse);

/* Device memory for tests and the bench (synchronous copies). */
lcx_status lcx_cuda_alloc(lcx_cuda_state *s, size_t bytes, void **out);
void lcx_cuda_free(lcx_cuda_state *s, void *p);
lcx_status lcx_cuda_copy(lcx_cuda_state *s, void *dst, const void *src, size_t bytes, int to_device);

/* For tests: the devices present (0 when the runtime finds none); the
 * calling thread's current device as cudaGetDevice reports it and whether
 * the thread has a current context (1, 0, -1 when the driver cannot say);
 * cudaSetDevice. */
int lcx_cuda_device_count(void);
/* For tests: 1 when q, k, v of head dim d (d = dv) in bf16 (or f16) take
 * the tensor-core attention kernel on the state's device, else 0. */
int lcx_cuda_attention_tc(lcx_cuda_state *s, int d, int bf16);
lcx_status lcx_cuda_thread_state(int *device, int *has_context);
lcx_status lcx_cuda_set_device(int device);
/* For tests: streams on the state's device (a caller stream for
 * lcx_context_options.cuda_stream), a copy queued on one without waiting
 * (kind 0 device to host, 1 host to device, 2 device to device), and a
 * wait for one. */
lcx_status lcx_cuda_stream_create(lcx_cuda_state *s, void **stream);
void lcx_cuda_stream_destroy(lcx_cuda_state *s, void *stream);
lcx_status lcx_cuda_stream_sync(lcx_cuda_state *s, void *stream);
lcx_status lcx_cuda_copy_async(lcx_cuda_state *s, void *stream, void *dst, const void *src, size_t bytes,
                               int kind);
/* For tests: capture of the state's stream into a CUDA graph (global
 * capture mode), ended into an instantiated graph, launched on the state's
 * stream, destroyed. */
lcx_status lcx_cuda_capture_begin(lcx_cuda_state *s);
lcx_status lcx_cuda_capture_end(lcx_cuda_state *s, void **graph_exec);
lcx_status lcx_cuda_graph_launch(lcx_cuda_state *s, void *graph_exec);
void lcx_cuda_graph_destroy(lcx_cuda_state *s, void *graph_exec);

/* Name of the CUDA kernel serving op `name` on state s, or NULL. */
const char *lcx_cuda_kernel_name(const lcx_cuda_state *s, const char *name);

#ifdef __cplusplus
}
#endif

#endif
