"""longctx for Python: a ctypes binding over the library's plain C ABI.

Loading: the shared library named by the environment variable LONGCTX_LIB
(a path), else ``ctypes.util.find_library('longctx')`` (an installed
liblongctx.so); ImportError with instructions otherwise.

Arrays are numpy arrays, passed without copies whenever the C side can
describe them (lcx_tensor: strides in elements, innermost stride 1):

    f32   numpy.float32
    f16   numpy.float16
    bf16  numpy.uint16, holding the raw bfloat16 bits (the upper half of a
          float32); bf16_to_f32() / f32_to_bf16() convert in numpy, or use
          Context.convert().

An input whose layout the C ABI cannot express (innermost dimension not
contiguous, negative or unaligned strides, foreign byte order) is copied; an
output or in-place argument with such a layout is refused with ValueError.
Integer arrays (positions, targets, cu_seqlens, ...) are int64 (adapter
indices int32) and are made contiguous. Every failing C call raises
LongctxError carrying the status code, its name and lcx_last_error().

Ops that run kernels are methods of Context (a context manager); host-side
helpers (positions, random numbers, top-k, LongRoPE search, introspection)
are module functions.
"""

import ctypes
import ctypes.util
import os
from ctypes import (POINTER, CFUNCTYPE, byref, c_char, c_char_p, c_double, c_float, c_int, c_int32,
                    c_int64, c_size_t, c_uint32, c_uint64, c_void_p)

import numpy as np

__all__ = [
    "LongctxError", "Context", "Rope", "RopeConfig", "Random",
    "F32", "F16", "BF16", "bf16_to_f32", "f32_to_bf16",
    "version", "version_string", "status_string", "last_error", "dtype_size", "dtype_name",
    "isa_name", "isa_from_name", "isa_supported", "isa_compiled", "isa_best", "cuda_compiled",
    "op_count", "op_name", "op_names", "tensor_validate", "tensor_numel",
    "rope_config_validate", "rope_frequencies", "rope_softmax_scale_multiplier",
    "pose_transform", "pose_sample", "pose_sample_chunks", "split_units", "gap_template",
    "prefix_then_template", "randpos_sample", "positions_offset", "positions_packed",
    "impact_topk", "longrope_yarn_factors", "longrope_search",
    "s2_default_group_size", "s2_segments", "WRAPPED", "NOT_WRAPPED",
]

ABI_MAJOR = 0  # the major version whose headers this module mirrors

# ---------------------------------------------------------------------------
# enums (values as in the headers)
# ---------------------------------------------------------------------------

OK = 0
E_INVALID = -1
E_UNSUPPORTED = -2
E_NOMEM = -3
E_OVERFLOW = -4
E_DEVICE = -5
E_CALLBACK = -6
E_INTERNAL = -7
STATUS_NAMES = {OK: "LCX_OK", E_INVALID: "LCX_E_INVALID", E_UNSUPPORTED: "LCX_E_UNSUPPORTED",
                E_NOMEM: "LCX_E_NOMEM", E_OVERFLOW: "LCX_E_OVERFLOW", E_DEVICE: "LCX_E_DEVICE",
                E_CALLBACK: "LCX_E_CALLBACK", E_INTERNAL: "LCX_E_INTERNAL"}

F32, F16, BF16 = 0, 1, 2                                    # lcx_dtype
DEVICE_CPU, DEVICE_CUDA = 0, 1                              # lcx_device
ISA_AUTO, ISA_SCALAR, ISA_AVX2, ISA_AVX512, ISA_NEON = 0, 1, 2, 3, 4   # lcx_isa
ISAS = {"auto": ISA_AUTO, "scalar": ISA_SCALAR, "avx2": ISA_AVX2, "avx512": ISA_AVX512, "neon": ISA_NEON}

ROPE_TYPES = {"default": 0, "linear": 1, "ntk": 2, "dynamic": 3, "yarn": 4, "llama3": 5, "longrope": 6}
ROPE_LAYOUTS = {"neox": 0, "interleaved": 1}
ROPE_PRECISIONS = {"precise": 0, "hf_f32": 1}
S2_MODES = {"roll": 0, "segments": 1, "ragged": 2}

MAX_DIMS = 4

# ---------------------------------------------------------------------------
# structs (field order, types and padding as in the headers)
# ---------------------------------------------------------------------------


class lcx_tensor(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("dtype", c_int), ("ndim", c_int32),
                ("shape", c_int64 * MAX_DIMS), ("stride", c_int64 * MAX_DIMS)]


# void (*task)(void *task_arg, int64_t index)
PARALLEL_TASK_FN = CFUNCTYPE(None, c_void_p, c_int64)
# int (*lcx_parallel_for_fn)(void *user, int64_t n_tasks, task, void *task_arg)
PARALLEL_FOR_FN = CFUNCTYPE(c_int, c_void_p, c_int64, PARALLEL_TASK_FN, c_void_p)


class lcx_context_options(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("device", c_int), ("isa", c_int), ("n_threads", c_int32),
                ("pin_threads", c_int32), ("parallel_for", c_void_p), ("parallel_for_user", c_void_p),
                ("cuda_device", c_int32), ("cuda_stream", c_void_p)]


class lcx_context_info(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("n_threads", c_int32), ("n_cores", c_int32), ("n_pus", c_int32),
                ("n_numa", c_int32), ("n_packages", c_int32), ("pinned", c_int32), ("l1d_bytes", c_int64),
                ("l2_bytes", c_int64), ("l3_bytes", c_int64), ("cpu_model", c_char * 96)]


class lcx_rope_config(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("type", c_int), ("layout", c_int), ("head_dim", c_int32),
                ("rotary_dim", c_int32), ("base", c_double), ("factor", c_double),
                ("original_max_position", c_int64), ("max_position", c_int64), ("beta_fast", c_double),
                ("beta_slow", c_double), ("truncate", c_int32), ("attention_factor", c_double),
                ("mscale", c_double), ("mscale_all_dim", c_double), ("low_freq_factor", c_double),
                ("high_freq_factor", c_double), ("short_factor", POINTER(c_double)),
                ("long_factor", POINTER(c_double)), ("n_hat", c_int64), ("precision", c_int)]


class lcx_random(ctypes.Structure):
    _fields_ = [("seed", c_uint64), ("stream", c_uint64), ("block", c_uint64), ("buf", c_uint32 * 4),
                ("used", c_int32)]


class lcx_attention_params(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("scale", c_double), ("causal", c_int32), ("window_left", c_int32),
                ("softcap", c_double), ("cu_seqlens_q", POINTER(c_int64)), ("cu_seqlens_k", POINTER(c_int64)),
                ("n_seqs", c_int32), ("pv_16bit", c_int32)]


class lcx_s2_params(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("group_size", c_int64), ("mode", c_int),
                ("shifted_head_start", c_int32), ("shift", c_int32), ("scale", c_double),
                ("exact_odd_group", c_int32)]


# int (*lcx_longrope_fitness_fn)(void *user, const double *factors, int32_t n, int64_t n_hat, double *fitness)
LONGROPE_FITNESS_FN = CFUNCTYPE(c_int, c_void_p, POINTER(c_double), c_int32, c_int64, POINTER(c_double))
# void (*lcx_longrope_progress_fn)(void *user, int32_t iteration, double best_fitness)
LONGROPE_PROGRESS_FN = CFUNCTYPE(None, c_void_p, c_int32, c_double)


class lcx_longrope_search_config(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("rotary_dim", c_int32), ("scale", c_double),
                ("upper_bound", c_double), ("population", c_int32), ("iterations", c_int32),
                ("mutations", c_int32), ("crossovers", c_int32), ("parents", c_int32), ("step", c_double),
                ("probability", c_double), ("crossover_retries", c_int32), ("max_attempts", c_int32),
                ("initial_factors", POINTER(c_double)), ("base", c_double),
                ("original_max_position", c_int64), ("beta_fast", c_double), ("beta_slow", c_double),
                ("n_hat_candidates", POINTER(c_int64)), ("n_n_hat", c_int32), ("seed", c_uint64),
                ("progress", c_void_p), ("progress_user", c_void_p)]


class lcx_lora_adapter(ctypes.Structure):
    _fields_ = [("a", lcx_tensor), ("b", lcx_tensor), ("scale", c_float)]


# ---------------------------------------------------------------------------
# loading and function prototypes
# ---------------------------------------------------------------------------


def _load():
    path = os.environ.get("LONGCTX_LIB")
    if not path:
        path = ctypes.util.find_library("longctx")
        if path is None:
            raise ImportError("longctx: liblongctx not found; set LONGCTX_LIB to the path of liblongctx.so "
                              "(e.g. build/lib/liblongctx.so) or install the library where the dynamic "
                              "loader finds it")
    try:
        return ctypes.CDLL(path), path
    except OSError as e:
        raise ImportError("longctx: cannot load %s: %s" % (path, e)) from e


lib, LIBRARY_PATH = _load()

_P = c_void_p        # opaque handles and data pointers
_PT = POINTER(lcx_tensor)
_PI64 = POINTER(c_int64)
_PD = POINTER(c_double)
_PR = POINTER(lcx_random)

# name: (restype, argtypes)
_PROTOTYPES = {
    # common.h
    "lcx_version": (c_uint32, []),
    "lcx_version_string": (c_char_p, []),
    "lcx_status_string": (c_char_p, [c_int]),
    "lcx_last_error": (c_char_p, []),
    "lcx_dtype_size": (c_size_t, [c_int]),
    "lcx_dtype_name": (c_char_p, [c_int]),
    "lcx_tensor_init": (c_int, [_PT, c_void_p, c_int, c_int32, _PI64]),
    "lcx_tensor_validate": (c_int, [_PT, c_char_p, c_int]),
    "lcx_tensor_numel": (c_int64, [_PT]),
    # longctx.h
    "lcx_isa_name": (c_char_p, [c_int]),
    "lcx_isa_from_name": (c_int, [c_char_p, POINTER(c_int)]),
    "lcx_isa_supported": (c_int, [c_int]),
    "lcx_isa_compiled": (c_int, [c_int]),
    "lcx_isa_best": (c_int, []),
    "lcx_cuda_compiled": (c_int, []),
    "lcx_context_options_default": (None, [POINTER(lcx_context_options)]),
    "lcx_context_create": (c_int, [POINTER(lcx_context_options), POINTER(c_void_p)]),
    "lcx_context_destroy": (None, [_P]),
    "lcx_context_isa_name": (c_char_p, [_P]),
    "lcx_context_isa": (c_int, [_P]),
    "lcx_context_device": (c_int, [_P]),
    "lcx_context_n_threads": (c_int32, [_P]),
    "lcx_context_kernel_name": (c_char_p, [_P, c_char_p]),
    "lcx_op_count": (c_int32, []),
    "lcx_op_name": (c_char_p, [c_int32]),
    "lcx_context_info_default": (None, [POINTER(lcx_context_info)]),
    "lcx_context_get_info": (c_int, [_P, POINTER(lcx_context_info)]),
    "lcx_convert": (c_int, [_P, _PT, _PT]),
    "lcx_context_synchronize": (c_int, [_P]),
    # rope.h
    "lcx_rope_config_default": (None, [POINTER(lcx_rope_config)]),
    "lcx_rope_config_validate": (c_int, [POINTER(lcx_rope_config)]),
    "lcx_rope_frequencies": (c_int, [POINTER(lcx_rope_config), c_int64, _PD, _PD]),
    "lcx_rope_softmax_scale_multiplier": (c_int, [POINTER(lcx_rope_config), _PD]),
    "lcx_rope_create": (c_int, [_P, POINTER(lcx_rope_config), c_int64, POINTER(c_void_p)]),
    "lcx_rope_destroy": (None, [_P]),
    "lcx_rope_set_length": (c_int, [_P, c_int64]),
    "lcx_rope_get": (c_int, [_P, _PD, _PD, POINTER(c_int32)]),
    "lcx_rope_apply": (c_int, [_P, _P, _PT, _PT, _PI64]),
    "lcx_rope_rerotate": (c_int, [_P, _P, _P, _PT, _PI64]),
    "lcx_rope_shift": (c_int, [_P, _P, _PT, c_int64]),
    # positions.h
    "lcx_random_init": (None, [_PR, c_uint64, c_uint64]),
    "lcx_random_u32": (c_uint32, [_PR]),
    "lcx_random_u64": (c_uint64, [_PR]),
    "lcx_random_below": (c_uint64, [_PR, c_uint64]),
    "lcx_random_range": (c_int64, [_PR, c_int64, c_int64]),
    "lcx_pose_transform": (c_int, [_PI64, _PI64, _PI64, c_int32, c_int64, c_int64, _PI64, _PI64]),
    "lcx_pose_sample": (c_int, [_PR, c_int64, c_int64, c_int64, _PI64, _PI64, _PI64]),
    "lcx_pose_sample_chunks": (c_int, [_PR, c_int64, c_int64, c_int64, c_int32, _PI64, _PI64, _PI64]),
    "lcx_split_units": (c_int, [_PI64, c_int64, _PI64, c_int32, _PI64, _PI64]),
    "lcx_gap_template": (c_int, [_PI64, c_int64, c_int64, _PI64, _PR, c_int32, _PI64]),
    "lcx_prefix_then_template": (c_int, [c_int64, _PI64, c_int64, _PI64]),
    "lcx_randpos_sample": (c_int, [_PR, c_int64, c_int64, _PI64]),
    "lcx_positions_offset": (c_int, [c_int64, c_int64, _PI64]),
    "lcx_positions_packed": (c_int, [_PI64, c_int32, _PI64]),
    "lcx_pose_sample_batch": (c_int, [_P, c_uint64, c_uint64, c_int64, _PI64, c_int64, c_int64, c_int32,
                                      _PI64, _PI64, _PI64]),
    "lcx_randpos_sample_batch": (c_int, [_P, c_uint64, c_uint64, c_int64, c_int64, c_int64, _PI64]),
    # recipe.h
    "lcx_merge_weights": (c_int, [_P, c_int32, _PT, _PD, _PT]),
    "lcx_token_logprobs": (c_int, [_P, _PT, _PI64, POINTER(c_float)]),
    "lcx_token_impact": (c_int, [_P, _PT, _PT, _PI64, POINTER(c_float)]),
    "lcx_impact_topk": (c_int, [POINTER(c_float), _PI64, c_int64, c_int64, c_int32, c_int64, _PI64, _PD,
                                _PI64]),
    "lcx_longrope_search_config_default": (None, [POINTER(lcx_longrope_search_config)]),
    "lcx_longrope_yarn_factors": (c_int, [c_int32, c_double, c_int64, c_double, c_double, c_double, _PD]),
    "lcx_longrope_search": (c_int, [POINTER(lcx_longrope_search_config), LONGROPE_FITNESS_FN, c_void_p, _PD,
                                    _PI64, _PD]),
    # attention.h
    "lcx_attention_params_default": (None, [POINTER(lcx_attention_params)]),
    "lcx_attention_forward": (c_int, [_P, POINTER(lcx_attention_params), _PT, _PT, _PT, _PT, POINTER(c_float)]),
    "lcx_attention_merge": (c_int, [_P, _PT, POINTER(c_float), _PT, POINTER(c_float), _PT, POINTER(c_float)]),
    "lcx_s2_params_default": (None, [POINTER(lcx_s2_params)]),
    "lcx_s2_default_group_size": (c_int64, [c_int64]),
    "lcx_attention_s2_forward": (c_int, [_P, POINTER(lcx_s2_params), _PT, _PT, _PT, _PT, POINTER(c_float)]),
    "lcx_s2_segments": (c_int, [c_int, c_int64, c_int64, c_int32, _PI64, c_int64, _PI64]),
    # lora.h
    "lcx_lora_linear": (c_int, [_P, _PT, _PT, _PT, _PT, _PT, c_float, _PT, c_int]),
    "lcx_lora_batched": (c_int, [_P, _PT, POINTER(lcx_lora_adapter), c_int32, POINTER(c_int32), _PT]),
    "lcx_lora_merge": (c_int, [_P, _PT, _PT, _PT, c_float]),
}

# Every exported lcx_ symbol is in exactly one of these two tables
# (check_symbols.py enforces it against the shared library).
WRAPPED = {
    "lcx_version": "version()",
    "lcx_version_string": "version_string()",
    "lcx_status_string": "status_string(), LongctxError",
    "lcx_last_error": "last_error(), LongctxError.message",
    "lcx_dtype_size": "dtype_size()",
    "lcx_dtype_name": "dtype_name()",
    "lcx_tensor_validate": "tensor_validate()",
    "lcx_tensor_numel": "tensor_numel()",
    "lcx_isa_name": "isa_name()",
    "lcx_isa_from_name": "isa_from_name()",
    "lcx_isa_supported": "isa_supported()",
    "lcx_isa_compiled": "isa_compiled()",
    "lcx_isa_best": "isa_best()",
    "lcx_cuda_compiled": "cuda_compiled()",
    "lcx_context_options_default": "Context()",
    "lcx_context_create": "Context()",
    "lcx_context_destroy": "Context.close()",
    "lcx_context_isa_name": "Context.isa",
    "lcx_context_isa": "Context.isa_id",
    "lcx_context_device": "Context.device",
    "lcx_context_n_threads": "Context.n_threads",
    "lcx_context_kernel_name": "Context.kernel_name()",
    "lcx_op_count": "op_count(), op_names()",
    "lcx_op_name": "op_name(), op_names()",
    "lcx_context_info_default": "Context.info()",
    "lcx_context_get_info": "Context.info()",
    "lcx_convert": "Context.convert()",
    "lcx_context_synchronize": "Context.synchronize()",
    "lcx_rope_config_default": "RopeConfig()",
    "lcx_rope_config_validate": "rope_config_validate(), RopeConfig.validate()",
    "lcx_rope_frequencies": "rope_frequencies()",
    "lcx_rope_softmax_scale_multiplier": "rope_softmax_scale_multiplier()",
    "lcx_rope_create": "Context.rope(), Rope()",
    "lcx_rope_destroy": "Rope.close()",
    "lcx_rope_set_length": "Rope.set_length()",
    "lcx_rope_get": "Rope.get()",
    "lcx_rope_apply": "Rope.apply(), Context.rope_apply()",
    "lcx_rope_rerotate": "Rope.rerotate(), Context.rope_rerotate()",
    "lcx_rope_shift": "Rope.shift(), Context.rope_shift()",
    "lcx_random_init": "Random()",
    "lcx_random_u32": "Random.u32()",
    "lcx_random_u64": "Random.u64()",
    "lcx_random_below": "Random.below()",
    "lcx_random_range": "Random.range()",
    "lcx_pose_transform": "pose_transform()",
    "lcx_pose_sample": "pose_sample()",
    "lcx_pose_sample_chunks": "pose_sample_chunks()",
    "lcx_split_units": "split_units()",
    "lcx_gap_template": "gap_template()",
    "lcx_prefix_then_template": "prefix_then_template()",
    "lcx_randpos_sample": "randpos_sample()",
    "lcx_positions_offset": "positions_offset()",
    "lcx_positions_packed": "positions_packed()",
    "lcx_pose_sample_batch": "Context.pose_sample_batch()",
    "lcx_randpos_sample_batch": "Context.randpos_sample_batch()",
    "lcx_merge_weights": "Context.merge_weights()",
    "lcx_token_logprobs": "Context.token_logprobs()",
    "lcx_token_impact": "Context.token_impact()",
    "lcx_impact_topk": "impact_topk()",
    "lcx_longrope_search_config_default": "longrope_search()",
    "lcx_longrope_yarn_factors": "longrope_yarn_factors()",
    "lcx_longrope_search": "longrope_search()",
    "lcx_attention_params_default": "Context.attention_forward()",
    "lcx_attention_forward": "Context.attention_forward()",
    "lcx_attention_merge": "Context.attention_merge()",
    "lcx_s2_params_default": "Context.attention_s2_forward()",
    "lcx_s2_default_group_size": "s2_default_group_size()",
    "lcx_attention_s2_forward": "Context.attention_s2_forward()",
    "lcx_s2_segments": "s2_segments()",
    "lcx_lora_linear": "Context.lora_linear()",
    "lcx_lora_batched": "Context.lora_batched()",
    "lcx_lora_merge": "Context.lora_merge()",
}

NOT_WRAPPED = {
    "lcx_tensor_init": "the binding fills lcx_tensor from the numpy array's own shape and strides "
                       "(any strided view); lcx_tensor_init only describes dense row-major buffers. "
                       "Reachable as longctx.lib.lcx_tensor_init.",
}


class _Missing:
    """Stands in for a symbol this library build does not export."""

    def __init__(self, name):
        self.__name__ = name

    def __call__(self, *args):
        raise LongctxError(E_UNSUPPORTED, "%s is not exported by %s" % (self.__name__, LIBRARY_PATH))


class _Lib:
    pass


_c = _Lib()   # the prototyped functions, by C name
for _name, (_res, _args) in _PROTOTYPES.items():
    try:
        _f = getattr(lib, _name)
    except AttributeError:
        setattr(_c, _name, _Missing(_name))
        continue
    _f.restype = _res
    _f.argtypes = _args
    setattr(_c, _name, _f)


def _str(b):
    return b.decode("utf-8", "replace") if b is not None else None


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


class LongctxError(Exception):
    """A longctx call failed. Attributes: status (the negative lcx_status),
    status_name ("LCX_E_INVALID"), description (lcx_status_string) and
    message (lcx_last_error() right after the failing call)."""

    def __init__(self, status, message):
        self.status = int(status)
        self.status_name = STATUS_NAMES.get(self.status, "LCX_STATUS_%d" % self.status)
        try:
            self.description = _str(_c.lcx_status_string(self.status))
        except Exception:  # pragma: no cover - only if the library lacks the symbol
            self.description = self.status_name
        self.message = message
        super().__init__("%s: %s" % (self.status_name, message))


def _check(status, what):
    if status != OK:
        msg = _str(_c.lcx_last_error()) or ""
        raise LongctxError(status, msg if msg else "%s failed" % what)


# ---------------------------------------------------------------------------
# dtypes and tensors
# ---------------------------------------------------------------------------

_NP_OF = {F32: np.dtype(np.float32), F16: np.dtype(np.float16), BF16: np.dtype(np.uint16)}
_NAMES = {"f32": F32, "float32": F32, "f16": F16, "float16": F16, "half": F16, "bf16": BF16,
          "bfloat16": BF16}


def _dtype_id(spec):
    """lcx_dtype of a spec: F32/F16/BF16, 'f32'/'f16'/'bf16' (or 'float32',
    'float16', 'bfloat16'), or a numpy dtype (float32, float16, uint16 = bf16)."""
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if int(spec) in _NP_OF:
            return int(spec)
        raise ValueError("unknown dtype %r" % (spec,))
    if isinstance(spec, str) and spec.lower() in _NAMES:
        return _NAMES[spec.lower()]
    try:
        d = np.dtype(spec)
    except TypeError:
        raise ValueError("unknown dtype %r" % (spec,)) from None
    for k, v in _NP_OF.items():
        if d == v:
            return k
    raise TypeError("dtype %s is not f32 (float32), f16 (float16) or bf16 (uint16 bits)" % d)


def _np_dtype(spec):
    return _NP_OF[_dtype_id(spec)]


def bf16_to_f32(bits):
    """bfloat16 bits (uint16 array) -> float32, exactly."""
    b = np.asarray(bits, dtype=np.uint16)
    return (b.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    """float32 -> bfloat16 bits (uint16), round to nearest even; NaN stays a
    quiet NaN with its sign (the rounding lcx_convert does)."""
    f = np.ascontiguousarray(x, dtype=np.float32)
    u = f.view(np.uint32).astype(np.uint64)
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = np.isnan(f)
    r = np.where(nan, (u >> 16) | 0x40, r)
    return r.astype(np.uint16)


def _layout_ok(a):
    if a.ndim < 1 or a.ndim > MAX_DIMS:
        return False
    if not a.flags.aligned or not a.dtype.isnative:
        return False
    if a.size == 0:
        return True      # nothing is read or written; described with dense strides
    it = a.itemsize
    for n, s in zip(a.shape, a.strides):
        if n > 1 and (s < 0 or s % it):
            return False
    return a.shape[-1] <= 1 or a.strides[-1] == it


def _tensor(a, name, writable=False):
    """(lcx_tensor, array actually described). Inputs with a layout the C ABI
    cannot express are copied; outputs are refused."""
    if not isinstance(a, np.ndarray):
        if writable:
            raise TypeError("%s must be a numpy array (it is written)" % name)
        a = np.asarray(a)
    dt = _dtype_id(a.dtype)
    if a.ndim < 1 or a.ndim > MAX_DIMS:
        raise ValueError("%s has %d dimensions; lcx_tensor takes 1..%d" % (name, a.ndim, MAX_DIMS))
    if writable and not a.flags.writeable:
        raise ValueError("%s is read-only but is written" % name)
    if not _layout_ok(a):
        if writable:
            raise ValueError("%s: this layout (strides %s bytes) cannot be described to the C side "
                             "(innermost stride must be 1 element, strides non-negative and aligned); "
                             "pass np.ascontiguousarray(%s) and copy back" % (name, a.strides, name))
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
    t = lcx_tensor()
    t.data = a.ctypes.data
    t.dtype = dt
    t.ndim = a.ndim
    dense = 1
    for i in range(a.ndim - 1, -1, -1):
        t.shape[i] = a.shape[i]
        t.stride[i] = a.strides[i] // a.itemsize if a.shape[i] > 1 and a.size else dense
        dense *= max(a.shape[i], 1)
    t.stride[a.ndim - 1] = 1
    return t, a


def _ints(x, name, dtype=np.int64):
    """A contiguous integer array (copied only when needed)."""
    a0 = np.asarray(x)
    if a0.size and a0.dtype.kind not in "iub":
        raise TypeError("%s must hold integers, got %s" % (name, a0.dtype))
    a = np.ascontiguousarray(a0, dtype=dtype)
    if a.ndim == 0:
        a = a.reshape(1)
    return a


def _ptr(a, ctype):
    return a.ctypes.data_as(POINTER(ctype)) if a is not None else None


def _out_f32(out, n, name, shape):
    """A float32 C-contiguous output buffer of n elements (shape for a fresh one)."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if (not isinstance(out, np.ndarray) or out.dtype != np.float32 or not out.flags.c_contiguous
            or not out.flags.writeable):
        raise ValueError("%s must be a writable C-contiguous float32 array" % name)
    if out.size != n:
        raise ValueError("%s has %d elements, %d needed" % (name, out.size, n))
    return out


def _in_f32(x, n, name):
    a = np.ascontiguousarray(x, dtype=np.float32)
    if a.size != n:
        raise ValueError("%s has %d elements, %d needed" % (name, a.size, n))
    return a


# ---------------------------------------------------------------------------
# version, status, dtypes, ISA, ops introspection
# ---------------------------------------------------------------------------


def version():
    """Runtime library version packed as (MAJOR << 16) | (MINOR << 8) | PATCH."""
    return int(_c.lcx_version())


def version_string():
    return _str(_c.lcx_version_string())


def status_string(status):
    return _str(_c.lcx_status_string(int(status)))


def last_error():
    """lcx_last_error() of the calling thread ("" if none)."""
    return _str(_c.lcx_last_error())


def dtype_size(dtype):
    """Bytes per element (0 for an unknown lcx_dtype value)."""
    d = int(dtype) if isinstance(dtype, (int, np.integer)) else _dtype_id(dtype)
    return int(_c.lcx_dtype_size(d))


def dtype_name(dtype):
    d = int(dtype) if isinstance(dtype, (int, np.integer)) else _dtype_id(dtype)
    return _str(_c.lcx_dtype_name(d))


def _isa_id(isa):
    if isa is None:
        return ISA_AUTO
    if isinstance(isa, str):
        return isa_from_name(isa)
    return int(isa)


def isa_name(isa):
    return _str(_c.lcx_isa_name(_isa_id(isa) if isinstance(isa, str) else int(isa)))


def isa_from_name(name):
    v = c_int(0)
    _check(_c.lcx_isa_from_name(name.encode() if isinstance(name, str) else name, byref(v)), "isa_from_name")
    return v.value


def isa_supported(isa):
    return bool(_c.lcx_isa_supported(_isa_id(isa)))


def isa_compiled(isa):
    return bool(_c.lcx_isa_compiled(_isa_id(isa)))


def isa_best():
    """The ISA LCX_ISA_AUTO resolves to here (ignoring LONGCTX_ISA), as a name."""
    return isa_name(_c.lcx_isa_best())


def cuda_compiled():
    return bool(_c.lcx_cuda_compiled())


def op_count():
    return int(_c.lcx_op_count())


def op_name(i):
    return _str(_c.lcx_op_name(int(i)))


def op_names():
    return [op_name(i) for i in range(op_count())]


def tensor_validate(a, name=None, writable=False):
    """Run the library's tensor validation on the view the binding builds for a."""
    t, _ = _tensor(a, name or "tensor", writable=False)
    _check(_c.lcx_tensor_validate(byref(t), name.encode() if name else None, int(bool(writable))),
           "tensor_validate")


def tensor_numel(a):
    t, _ = _tensor(a, "tensor")
    return int(_c.lcx_tensor_numel(byref(t)))


# ---------------------------------------------------------------------------
# random numbers (Philox4x32-10 stream)
# ---------------------------------------------------------------------------


class Random:
    """lcx_random: the library's counter-based stream (seed, stream); the same
    numbers as the C API on every platform."""

    def __init__(self, seed=0, stream=0):
        self._r = lcx_random()
        _c.lcx_random_init(byref(self._r), c_uint64(seed & (2**64 - 1)), c_uint64(stream & (2**64 - 1)))

    def u32(self):
        return int(_c.lcx_random_u32(byref(self._r)))

    def u64(self):
        return int(_c.lcx_random_u64(byref(self._r)))

    def below(self, n):
        """Uniform integer in [0, n) (n = 0 gives 0)."""
        return int(_c.lcx_random_below(byref(self._r), c_uint64(n)))

    def range(self, lo, hi):
        """Uniform integer in [lo, hi] (inclusive)."""
        return int(_c.lcx_random_range(byref(self._r), lo, hi))

    def copy(self):
        r = Random.__new__(Random)
        r._r = lcx_random()
        ctypes.pointer(r._r)[0] = self._r
        return r

    @property
    def state(self):
        return (self._r.seed, self._r.stream, self._r.block, tuple(self._r.buf), self._r.used)


def _rng(rng):
    if rng is None:
        return None
    if not isinstance(rng, Random):
        raise TypeError("rng must be a longctx.Random")
    return byref(rng._r)


# ---------------------------------------------------------------------------
# positions (host functions writing int64 arrays)
# ---------------------------------------------------------------------------


def pose_transform(lengths, skips, content=None, *, doc_len, target_len):
    """PoSE from explicit draws: returns (index, pos), sum(lengths) entries each."""
    ln = _ints(lengths, "lengths")
    sk = _ints(skips, "skips")
    ct = _ints(content, "content") if content is not None else None
    if sk.size != ln.size or (ct is not None and ct.size != ln.size):
        raise ValueError("lengths, skips and content need one entry per chunk")
    total = int(np.clip(ln, 0, None).sum())
    idx = np.empty(max(total, 1), np.int64)
    pos = np.empty(max(total, 1), np.int64)
    _check(_c.lcx_pose_transform(_ptr(ln, c_int64), _ptr(sk, c_int64), _ptr(ct, c_int64), ln.size, doc_len,
                                 target_len, _ptr(idx, c_int64), _ptr(pos, c_int64)), "pose_transform")
    return idx[:total], pos[:total]


def pose_sample(rng, doc_len, window_len, target_len):
    """The official two-chunk PoSE sampler: (index, pos) of min(doc_len, window_len) entries."""
    cap = max(int(window_len), 1)
    idx = np.empty(cap, np.int64)
    pos = np.empty(cap, np.int64)
    n = c_int64(0)
    _check(_c.lcx_pose_sample(_rng(rng), doc_len, window_len, target_len, _ptr(idx, c_int64),
                              _ptr(pos, c_int64), byref(n)), "pose_sample")
    return idx[:n.value], pos[:n.value]


def pose_sample_chunks(rng, doc_len, window_len, target_len, n_chunks):
    """The paper's N-chunk PoSE sampler: (index, pos)."""
    cap = max(int(window_len), 1)
    idx = np.empty(cap, np.int64)
    pos = np.empty(cap, np.int64)
    n = c_int64(0)
    _check(_c.lcx_pose_sample_chunks(_rng(rng), doc_len, window_len, target_len, n_chunks,
                                     _ptr(idx, c_int64), _ptr(pos, c_int64), byref(n)), "pose_sample_chunks")
    return idx[:n.value], pos[:n.value]


def split_units(tokens, delims):
    """Sentence units: the end (exclusive) of each unit."""
    tk = _ints(tokens, "tokens")
    dl = _ints(delims, "delims")
    ends = np.empty(max(tk.size, 1), np.int64)
    n = c_int64(0)
    _check(_c.lcx_split_units(_ptr(tk, c_int64), tk.size, _ptr(dl, c_int64), dl.size, _ptr(ends, c_int64),
                              byref(n)), "split_units")
    return ends[:n.value]


def gap_template(unit_lengths, extra, slots=None, rng=None, released_quirk=False):
    """LongRecipe's sentence-gap template: T = sum(unit_lengths) positions.
    slots: the U chosen slots (sorted), or None to draw them with rng."""
    ul = _ints(unit_lengths, "unit_lengths")
    sl = _ints(slots, "slots") if slots is not None else None
    if sl is not None and sl.size != ul.size:
        raise ValueError("slots needs one entry per unit (%d), got %d" % (ul.size, sl.size))
    total = int(np.clip(ul, 0, None).sum())
    pos = np.empty(max(total, 1), np.int64)
    _check(_c.lcx_gap_template(_ptr(ul, c_int64), ul.size, extra, _ptr(sl, c_int64),
                               _rng(rng), int(bool(released_quirk)), _ptr(pos, c_int64)), "gap_template")
    return pos[:total]


def prefix_then_template(rt1, template):
    """0..rt1-1 followed by template[rt1:]."""
    tp = _ints(template, "template").reshape(-1)
    n = tp.size
    pos = np.empty(max(n, 1), np.int64)
    _check(_c.lcx_prefix_then_template(rt1, _ptr(tp, c_int64), n, _ptr(pos, c_int64)), "prefix_then_template")
    return pos[:n]


def randpos_sample(rng, n, target_len):
    """RandPos: n distinct sorted positions in [0, target_len)."""
    pos = np.empty(max(int(n), 1), np.int64)
    _check(_c.lcx_randpos_sample(_rng(rng), n, target_len, _ptr(pos, c_int64)), "randpos_sample")
    return pos[:max(int(n), 0)]


def positions_offset(n, offset):
    pos = np.empty(max(int(n), 1), np.int64)
    _check(_c.lcx_positions_offset(n, offset, _ptr(pos, c_int64)), "positions_offset")
    return pos[:max(int(n), 0)]


def positions_packed(cu_seqlens):
    """Positions restarting at 0 at every document start of a packed batch."""
    cu = _ints(cu_seqlens, "cu_seqlens").reshape(-1)
    n_docs = cu.size - 1
    total = int(cu[-1]) if cu.size else 0
    if total > 2**40:
        raise ValueError("cu_seqlens total %d is implausibly large" % total)
    pos = np.empty(max(total, 1), np.int64)
    _check(_c.lcx_positions_packed(_ptr(cu, c_int64), n_docs, _ptr(pos, c_int64)), "positions_packed")
    return pos[:max(total, 0)]


# ---------------------------------------------------------------------------
# RoPE configuration and host-side queries
# ---------------------------------------------------------------------------

_ROPE_ENUMS = {"type": ROPE_TYPES, "layout": ROPE_LAYOUTS, "precision": ROPE_PRECISIONS}


class RopeConfig:
    """lcx_rope_config with the library's defaults (lcx_rope_config_default);
    keyword arguments set fields by their C names. type, layout and precision
    take names ('yarn', 'interleaved', 'hf_f32') or the enum values;
    short_factor / long_factor take arrays of rotary_dim/2 factors."""

    def __init__(self, **fields):
        self._c = lcx_rope_config()
        _c.lcx_rope_config_default(byref(self._c))
        self._short = self._long = None
        for k, v in fields.items():
            setattr(self, k, v)

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        if name in ("short_factor", "long_factor"):
            arr = None if value is None else np.ascontiguousarray(value, dtype=np.float64).reshape(-1)
            object.__setattr__(self, "_short" if name == "short_factor" else "_long", arr)
            setattr(self._c, name, _ptr(arr, c_double) if arr is not None else None)
            return
        if name == "struct_size" or name not in dict(lcx_rope_config._fields_):
            raise AttributeError("lcx_rope_config has no settable field %r" % name)
        if name in _ROPE_ENUMS and isinstance(value, str):
            try:
                value = _ROPE_ENUMS[name][value.lower()]
            except KeyError:
                raise ValueError("unknown %s %r (one of %s)" % (name, value, ", ".join(_ROPE_ENUMS[name])))
        setattr(self._c, name, value)

    def __getattr__(self, name):
        if name in ("short_factor", "long_factor"):
            return self.__dict__["_short" if name == "short_factor" else "_long"]
        if name in dict(lcx_rope_config._fields_):
            return getattr(self.__dict__["_c"], name)
        raise AttributeError(name)

    def _struct(self):
        """The C struct, after checking the factor arrays are long enough to read."""
        d = self._c.rotary_dim if self._c.rotary_dim > 0 else self._c.head_dim
        for nm, arr in (("short_factor", self._short), ("long_factor", self._long)):
            if arr is not None and 0 < d <= 2048 and arr.size < d // 2:
                raise ValueError("%s has %d factors; rotary_dim %d needs %d" % (nm, arr.size, d, d // 2))
        return self._c

    def validate(self):
        rope_config_validate(self)

    def __repr__(self):
        f = ", ".join("%s=%r" % (n, getattr(self._c, n)) for n, _ in lcx_rope_config._fields_
                      if n not in ("struct_size", "short_factor", "long_factor"))
        return "RopeConfig(%s)" % f


def _rope_cfg(cfg, fields):
    if cfg is None:
        cfg = RopeConfig(**fields)
    elif fields:
        raise TypeError("pass either a RopeConfig or keyword fields, not both")
    if not isinstance(cfg, RopeConfig):
        raise TypeError("config must be a longctx.RopeConfig")
    return cfg


def rope_config_validate(cfg=None, **fields):
    cfg = _rope_cfg(cfg, fields)
    _check(_c.lcx_rope_config_validate(byref(cfg._struct())), "rope_config_validate")


def rope_frequencies(cfg=None, seq_len=0, **fields):
    """(theta: float64[rotary_dim/2], attention_factor a) for a sequence length."""
    cfg = _rope_cfg(cfg, fields)
    c = cfg._struct()
    d = c.rotary_dim if c.rotary_dim > 0 else c.head_dim
    n = max(d // 2, 1) if 0 < d <= 2048 else 1
    if d > 2048:   # refused by the validation before anything is written
        n = 1
    inv = np.zeros(n, np.float64)
    a = c_double(0)
    _check(_c.lcx_rope_frequencies(byref(c), seq_len, _ptr(inv, c_double), byref(a)), "rope_frequencies")
    return inv[:d // 2], a.value


def rope_softmax_scale_multiplier(cfg=None, **fields):
    cfg = _rope_cfg(cfg, fields)
    m = c_double(0)
    _check(_c.lcx_rope_softmax_scale_multiplier(byref(cfg._struct()), byref(m)), "rope_softmax_scale_multiplier")
    return m.value


def _positions(positions, batch, seq):
    if positions is None:
        return None, None
    p = _ints(positions, "positions")
    if p.size != batch * seq:
        raise ValueError("positions has %d entries; [batch %d][seq %d] needed" % (p.size, batch, seq))
    return p, _ptr(p, c_int64)


def _bs(*arrays):
    """(batch, seq) of the first 4-D array given."""
    for a in arrays:
        if a is not None and np.ndim(a) >= 2:
            return np.shape(a)[0], np.shape(a)[1]
    return 0, 0


class Rope:
    """lcx_rope: the frequencies of a config for a length (create with
    Context.rope()). Read-only during apply/rerotate/shift."""

    def __init__(self, ctx, cfg=None, seq_len=0, **fields):
        cfg = _rope_cfg(cfg, fields)
        self._ctx = ctx
        self.config = cfg
        h = c_void_p()
        _check(_c.lcx_rope_create(ctx._h, byref(cfg._struct()), seq_len, byref(h)), "rope_create")
        self._h = h

    def close(self):
        if getattr(self, "_h", None):
            _c.lcx_rope_destroy(self._h)
            self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _handle(self):
        if not self._h:
            raise ValueError("rope object is closed")
        return self._h

    def set_length(self, seq_len):
        _check(_c.lcx_rope_set_length(self._handle(), seq_len), "rope_set_length")

    def get(self):
        """(theta float64[rotary_dim/2], attention_factor, rotary_dim) in use."""
        rd = c_int32(0)
        a = c_double(0)
        _check(_c.lcx_rope_get(self._handle(), None, byref(a), byref(rd)), "rope_get")
        inv = np.zeros(max(rd.value // 2, 1), np.float64)
        _check(_c.lcx_rope_get(self._handle(), _ptr(inv, c_double), None, None), "rope_get")
        return inv[:rd.value // 2], a.value, rd.value

    def apply(self, q=None, k=None, positions=None, ctx=None):
        """Rotate q [batch][seq][heads][head_dim] and/or k [batch][seq][kv_heads][head_dim]
        in place; positions int64 [batch][seq] or None (0..seq-1). Returns (q, k)."""
        return (ctx or self._ctx).rope_apply(self, q, k, positions)

    def rerotate(self, to, k, positions=None, ctx=None):
        """Move keys rotated by this rope to the rotation of `to` (in place)."""
        return (ctx or self._ctx).rope_rerotate(self, to, k, positions)

    def shift(self, k, delta, ctx=None):
        """Context shift of cached keys by delta positions (in place)."""
        return (ctx or self._ctx).rope_shift(self, k, delta)


# ---------------------------------------------------------------------------
# recipe host functions
# ---------------------------------------------------------------------------


def impact_topk(scores, token_ids, vocab, k, use_abs=False):
    """Mean impact per token id, top k: (ids int64, means float64)."""
    sc = np.ascontiguousarray(scores, dtype=np.float32).reshape(-1)
    ids = _ints(token_ids, "token_ids").reshape(-1)
    if sc.size != ids.size:
        raise ValueError("scores (%d) and token_ids (%d) differ in length" % (sc.size, ids.size))
    kk = max(int(k), 1) if int(k) <= 2**26 else 1
    top = np.empty(kk, np.int64)
    means = np.empty(kk, np.float64)
    n = c_int64(0)
    _check(_c.lcx_impact_topk(_ptr(sc, c_float), _ptr(ids, c_int64), sc.size, vocab, int(bool(use_abs)), k,
                              _ptr(top, c_int64), _ptr(means, c_double), byref(n)), "impact_topk")
    return top[:n.value], means[:n.value]


def longrope_yarn_factors(rotary_dim, base=10000.0, original_max_position=4096, scale=8.0, beta_fast=32.0,
                          beta_slow=1.0):
    """YaRN-derived LongRoPE factors (rotary_dim/2 doubles)."""
    n = rotary_dim // 2 if 2 <= rotary_dim <= 4096 else 1
    f = np.zeros(max(n, 1), np.float64)
    _check(_c.lcx_longrope_yarn_factors(rotary_dim, base, original_max_position, scale, beta_fast, beta_slow,
                                        _ptr(f, c_double)), "longrope_yarn_factors")
    return f[:rotary_dim // 2]


def longrope_search(fitness, progress=None, initial_factors=None, n_hat_candidates=None, **config):
    """LongRoPE evolutionary factor search.

    fitness(factors: float64 array, n_hat: int) -> float (lower is better);
    progress(iteration, best_fitness) is optional. Other keyword arguments set
    lcx_longrope_search_config fields (rotary_dim, scale, population,
    iterations, seed, ...). Returns (best_factors, best_n_hat, best_fitness).
    An exception in a callback stops the search (LongctxError LCX_E_CALLBACK,
    with the callback's exception as __cause__)."""
    cfg = lcx_longrope_search_config()
    _c.lcx_longrope_search_config_default(byref(cfg))
    names = dict(lcx_longrope_search_config._fields_)
    for k, v in config.items():
        if k in ("struct_size", "initial_factors", "n_hat_candidates", "n_n_hat", "progress", "progress_user") \
                or k not in names:
            raise TypeError("unknown or reserved longrope search field %r" % k)
        setattr(cfg, k, v)
    d = cfg.rotary_dim
    nf = d // 2 if 2 <= d <= 4096 else 0
    init = None
    if initial_factors is not None:
        init = np.ascontiguousarray(initial_factors, dtype=np.float64).reshape(-1)
        if init.size < nf:
            raise ValueError("initial_factors has %d factors, rotary_dim %d needs %d" % (init.size, d, nf))
        cfg.initial_factors = _ptr(init, c_double)
    cand = None
    if n_hat_candidates is not None:
        cand = _ints(n_hat_candidates, "n_hat_candidates").reshape(-1)
        cfg.n_hat_candidates = _ptr(cand, c_int64)
        cfg.n_n_hat = cand.size
    errors = []

    def _fit(user, factors, n, n_hat, out):
        try:
            f = np.ctypeslib.as_array(factors, shape=(n,)).copy()
            out[0] = float(fitness(f, int(n_hat)))
            return 0
        except BaseException as e:  # reported after the C call returns
            errors.append(e)
            return 1

    def _prog(user, it, best):
        if errors:
            return
        try:
            progress(int(it), float(best))
        except BaseException as e:
            errors.append(e)

    fit_cb = LONGROPE_FITNESS_FN(_fit)
    prog_cb = LONGROPE_PROGRESS_FN(_prog) if progress is not None else None
    if prog_cb is not None:
        cfg.progress = ctypes.cast(prog_cb, c_void_p).value
    best = np.zeros(max(nf, 1), np.float64)
    n_hat = c_int64(0)
    fit = c_double(0)
    st = _c.lcx_longrope_search(byref(cfg), fit_cb, None, _ptr(best, c_double), byref(n_hat), byref(fit))
    if st != OK:
        msg = _str(_c.lcx_last_error()) or "longrope_search failed"
        err = LongctxError(st, msg)
        if errors:
            raise err from errors[0]
        raise err
    if errors:   # the progress callback failed but the search finished
        raise LongctxError(E_CALLBACK, "progress callback raised %r" % (errors[0],)) from errors[0]
    return best[:nf], n_hat.value, fit.value


def s2_default_group_size(seq_len):
    """LongLoRA's default group size: int(seq / 4) (0 below 4)."""
    return int(_c.lcx_s2_default_group_size(seq_len))


def _s2_mode(mode):
    if isinstance(mode, str):
        try:
            return S2_MODES[mode.lower()]
        except KeyError:
            raise ValueError("unknown S2 mode %r (one of %s)" % (mode, ", ".join(S2_MODES))) from None
    return int(mode)


def s2_segments(mode, seq_len, group_size, shifted):
    """[start, end) segments of one head kind, int64 [n][2] (ROLL's wrap
    group has start > end: tail then head)."""
    cap = seq_len // group_size + 2 if group_size > 0 and seq_len > 0 else 1
    seg = np.zeros((max(cap, 1), 2), np.int64)
    n = c_int64(0)
    _check(_c.lcx_s2_segments(_s2_mode(mode), seq_len, group_size, int(shifted), _ptr(seg, c_int64), cap,
                              byref(n)), "s2_segments")
    return seg[:n.value]


# ---------------------------------------------------------------------------
# the context and its ops
# ---------------------------------------------------------------------------


class Context:
    """An lcx_context (CPU): ISA, threads, scratch. Use as a context manager or
    call close(). One thread at a time per context.

    isa:          None / 'auto' (LONGCTX_ISA, else the best), 'scalar', 'avx2',
                  'avx512', 'neon' or an ISA_* value; a missing ISA raises
                  LongctxError LCX_E_UNSUPPORTED.
    threads:      0 = one per physical core, 1 = no pool, n = n workers.
    pin_threads:  pin worker i to core i.
    parallel_for: optional callable(n_tasks, task) that must call task(i) once
                  for every i in range(n_tasks) (any order, any threads: task
                  releases the GIL) and return when all are done; the
                  library then runs its parallel loops through it.
    """

    def __init__(self, isa=None, threads=0, pin_threads=False, parallel_for=None):
        self._h = None
        self._pf_error = []
        opts = lcx_context_options()
        _c.lcx_context_options_default(byref(opts))
        opts.isa = _isa_id(isa)
        opts.n_threads = int(threads)
        opts.pin_threads = int(bool(pin_threads))
        self._pf_cb = None
        if parallel_for is not None:
            def _pf(user, n_tasks, task, task_arg):
                try:
                    parallel_for(int(n_tasks), lambda i: task(task_arg, int(i)))
                    return 0
                except BaseException as e:
                    self._pf_error.append(e)
                    return 1
            self._pf_cb = PARALLEL_FOR_FN(_pf)
            opts.parallel_for = ctypes.cast(self._pf_cb, c_void_p).value
        h = c_void_p()
        _check(_c.lcx_context_create(byref(opts), byref(h)), "context_create")
        self._h = h

    # -- lifetime --
    def close(self):
        if getattr(self, "_h", None):
            _c.lcx_context_destroy(self._h)
            self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _handle(self):
        if not self._h:
            raise ValueError("context is closed")
        return self._h

    def _run(self, status, what):
        """_check, attaching an exception raised inside parallel_for."""
        if status != OK:
            msg = _str(_c.lcx_last_error()) or "%s failed" % what
            err = LongctxError(status, msg)
            if self._pf_error:
                cause = self._pf_error[0]
                self._pf_error.clear()
                raise err from cause
            raise err
        self._pf_error.clear()

    # -- introspection --
    @property
    def isa(self):
        """ISA name of the context's kernels ('scalar', 'avx2', ...)."""
        return _str(_c.lcx_context_isa_name(self._handle()))

    @property
    def isa_id(self):
        return int(_c.lcx_context_isa(self._handle()))

    @property
    def device(self):
        return int(_c.lcx_context_device(self._handle()))

    @property
    def n_threads(self):
        return int(_c.lcx_context_n_threads(self._handle()))

    def kernel_name(self, op):
        """Kernel serving a dispatched op (see op_names())."""
        r = _c.lcx_context_kernel_name(self._handle(), op.encode())
        if r is None:
            raise LongctxError(E_INVALID, _str(_c.lcx_last_error()) or "unknown op %r" % op)
        return _str(r)

    def kernels(self):
        return {op: self.kernel_name(op) for op in op_names()}

    def info(self):
        """What the context knows of the machine, as a dict."""
        inf = lcx_context_info()
        _c.lcx_context_info_default(byref(inf))
        self._run(_c.lcx_context_get_info(self._handle(), byref(inf)), "context_get_info")
        d = {n: getattr(inf, n) for n, _ in lcx_context_info._fields_ if n != "struct_size"}
        d["cpu_model"] = inf.cpu_model.decode("utf-8", "replace")
        return d

    def synchronize(self):
        self._run(_c.lcx_context_synchronize(self._handle()), "context_synchronize")

    # -- conversion --
    def convert(self, src, dtype=None, out=None):
        """out = src converted to dtype ('f32', 'f16', 'bf16' or numpy dtype),
        or into out (any strides with innermost stride 1)."""
        if out is None:
            if dtype is None:
                raise TypeError("give dtype or out")
            out = np.empty(np.shape(src), dtype=_np_dtype(dtype))
        ts, src = _tensor(src, "src")
        td, _ = _tensor(out, "dst", writable=True)
        self._run(_c.lcx_convert(self._handle(), byref(ts), byref(td)), "convert")
        return out

    # -- RoPE --
    def rope(self, cfg=None, seq_len=0, **fields):
        """Create a Rope (config copied, frequencies for seq_len)."""
        return Rope(self, cfg, seq_len, **fields)

    def rope_apply(self, rope, q=None, k=None, positions=None):
        if q is None and k is None:
            raise TypeError("rope_apply needs q, k or both")
        tq = _tensor(q, "q", writable=True)[0] if q is not None else None
        tk = _tensor(k, "k", writable=True)[0] if k is not None else None
        _, pp = _positions(positions, *_bs(q, k))
        self._run(_c.lcx_rope_apply(self._handle(), rope._handle(), byref(tq) if tq else None,
                                    byref(tk) if tk else None, pp), "rope_apply")
        return q, k

    def rope_rerotate(self, frm, to, k, positions=None):
        tk, _ = _tensor(k, "k", writable=True)
        _, pp = _positions(positions, *_bs(k))
        self._run(_c.lcx_rope_rerotate(self._handle(), frm._handle(), to._handle(), byref(tk), pp),
                  "rope_rerotate")
        return k

    def rope_shift(self, rope, k, delta):
        tk, _ = _tensor(k, "k", writable=True)
        self._run(_c.lcx_rope_shift(self._handle(), rope._handle(), byref(tk), delta), "rope_shift")
        return k

    # -- recipe tools --
    def merge_weights(self, inputs, coeffs, out=None, dtype=None):
        """out = sum coeffs[i] * inputs[i] (f32 accumulation, one rounding).
        out may be one of the inputs (in-place merge)."""
        inputs = list(inputs)
        cf = np.ascontiguousarray(coeffs, dtype=np.float64).reshape(-1)
        if cf.size != len(inputs):
            raise ValueError("%d coefficients for %d inputs" % (cf.size, len(inputs)))
        if out is None:
            if not inputs:
                raise ValueError("merge_weights needs at least one input or an out array")
            out = np.empty(np.shape(inputs[0]),
                           dtype=_np_dtype(dtype) if dtype is not None else np.asarray(inputs[0]).dtype)
        arr = (lcx_tensor * max(len(inputs), 1))()
        keep = []
        for i, a in enumerate(inputs):
            t, a2 = _tensor(a, "inputs[%d]" % i)
            arr[i] = t
            keep.append(a2)
        to, _ = _tensor(out, "out", writable=True)
        self._run(_c.lcx_merge_weights(self._handle(), len(inputs), arr, _ptr(cf, c_double), byref(to)),
                  "merge_weights")
        return out

    @staticmethod
    def _rows(logits):
        shp = np.shape(logits)
        return shp[:-1] if len(shp) >= 2 else (1,)

    def pose_sample_batch(self, seed, stream, doc_lens, window_len, target_len, n_chunks=0):
        """PoSE for len(doc_lens) rows, row r on the stream (seed, stream + r): (index, pos, n),
        index and pos int64 [rows][window_len] (-1 past row r's n[r] entries). n_chunks 0: the
        two-chunk sampler, else the N-chunk form."""
        dl = _ints(doc_lens, "doc_lens").reshape(-1)
        rows = dl.size
        w = max(int(window_len), 1)
        idx = np.full((max(rows, 1), w), -1, np.int64)
        pos = np.full((max(rows, 1), w), -1, np.int64)
        n = np.zeros(max(rows, 1), np.int64)
        self._run(_c.lcx_pose_sample_batch(self._handle(), c_uint64(seed), c_uint64(stream), rows,
                                           _ptr(dl, c_int64), window_len, target_len, n_chunks,
                                           _ptr(idx, c_int64), _ptr(pos, c_int64), _ptr(n, c_int64)),
                  "pose_sample_batch")
        return idx[:rows], pos[:rows], n[:rows]

    def randpos_sample_batch(self, seed, stream, rows, n, target_len):
        """RandPos for `rows` rows, row r on the stream (seed, stream + r): int64 [rows][n]."""
        pos = np.empty((max(int(rows), 1), max(int(n), 1)), np.int64)
        self._run(_c.lcx_randpos_sample_batch(self._handle(), c_uint64(seed), c_uint64(stream), rows, n,
                                              target_len, _ptr(pos, c_int64)), "randpos_sample_batch")
        return pos[:max(int(rows), 0), :max(int(n), 0)]

    def token_logprobs(self, logits, targets, out=None):
        """log softmax(logits)[target] per row: float32 of shape logits.shape[:-1]."""
        rows = self._rows(logits)
        n = int(np.prod(rows))
        tg = _ints(targets, "targets").reshape(-1)
        if tg.size != n:
            raise ValueError("targets has %d entries for %d rows" % (tg.size, n))
        out = _out_f32(out, n, "out", rows)
        tl, logits = _tensor(logits, "logits")
        self._run(_c.lcx_token_logprobs(self._handle(), byref(tl), _ptr(tg, c_int64), _ptr(out, c_float)),
                  "token_logprobs")
        return out

    def token_impact(self, base_logits, ext_logits, targets, out=None):
        """lp_ext - lp_base per row (float32, shape logits.shape[:-1])."""
        rows = self._rows(base_logits)
        n = int(np.prod(rows))
        tg = _ints(targets, "targets").reshape(-1)
        if tg.size != n:
            raise ValueError("targets has %d entries for %d rows" % (tg.size, n))
        out = _out_f32(out, n, "out", rows)
        tb, base_logits = _tensor(base_logits, "base_logits")
        te, ext_logits = _tensor(ext_logits, "ext_logits")
        self._run(_c.lcx_token_impact(self._handle(), byref(tb), byref(te), _ptr(tg, c_int64),
                                      _ptr(out, c_float)), "token_impact")
        return out

    # -- attention --
    def _attn_out(self, q, v, out, dtype):
        if out is not None:
            return out
        if np.ndim(q) != 4 or np.ndim(v) != 4:
            raise ValueError("q [batch][seq_q][heads][d] and v [batch][seq_k][kv_heads][dv] must be 4-D")
        dt = _np_dtype(dtype) if dtype is not None else np.asarray(q).dtype
        return np.empty(np.shape(q)[:3] + (np.shape(v)[3],), dtype=dt)

    @staticmethod
    def _lse_buf(q, lse, return_lse):
        if lse is None and not return_lse:
            return None
        if np.ndim(q) != 4:
            raise ValueError("q must be [batch][seq_q][heads][d] to size lse")
        b, s, h = np.shape(q)[0], np.shape(q)[1], np.shape(q)[2]
        return _out_f32(lse, b * h * s, "lse", (b, h, s))

    def attention_forward(self, q, k, v, out=None, *, dtype=None, scale=0.0, causal=False, window_left=-1,
                          softcap=0.0, cu_seqlens_q=None, cu_seqlens_k=None, return_lse=False, lse=None,
                          pv_16bit=False):
        """out = softmax(scale q k^T [masks, softcap]) v.
        q [b][sq][h][d], k [b][sk][kvh][d], v [b][sk][kvh][dv] -> out [b][sq][h][dv]
        (dtype: q's unless given). return_lse (or an lse array) also gives
        float32 lse [b][h][sq]. Varlen: batch 1 and cu_seqlens_q/k (n_seqs + 1
        offsets each). pv_16bit: allow FlashAttention's 16-bit P on CUDA
        tensor cores (see attention.h)."""
        out = self._attn_out(q, v, out, dtype)
        ls = self._lse_buf(q, lse, return_lse)
        p = lcx_attention_params()
        _c.lcx_attention_params_default(byref(p))
        p.scale = scale
        p.causal = int(bool(causal))
        p.window_left = int(window_left)
        p.softcap = softcap
        p.pv_16bit = int(bool(pv_16bit))
        keep = []
        if cu_seqlens_q is not None or cu_seqlens_k is not None:
            if cu_seqlens_q is None or cu_seqlens_k is None:
                raise ValueError("varlen needs both cu_seqlens_q and cu_seqlens_k")
            cq = _ints(cu_seqlens_q, "cu_seqlens_q").reshape(-1)
            ck = _ints(cu_seqlens_k, "cu_seqlens_k").reshape(-1)
            if cq.size != ck.size or cq.size < 2:
                raise ValueError("cu_seqlens_q and cu_seqlens_k need the same n_seqs + 1 >= 2 entries")
            keep += [cq, ck]
            p.cu_seqlens_q = _ptr(cq, c_int64)
            p.cu_seqlens_k = _ptr(ck, c_int64)
            p.n_seqs = cq.size - 1
        tq, q = _tensor(q, "q")
        tk, k = _tensor(k, "k")
        tv, v = _tensor(v, "v")
        to, _ = _tensor(out, "out", writable=True)
        self._run(_c.lcx_attention_forward(self._handle(), byref(p), byref(tq), byref(tk), byref(tv), byref(to),
                                           _ptr(ls, c_float)), "attention_forward")
        return (out, ls) if ls is not None else out

    def attention_merge(self, out_a, lse_a, out_b, lse_b, out=None, lse=None, dtype=None):
        """Exact merge of two partial results over disjoint key sets:
        (out, lse). out may be out_a or out_b, lse may be lse_a or lse_b."""
        if out is None:
            dt = _np_dtype(dtype) if dtype is not None else np.asarray(out_a).dtype
            out = np.empty(np.shape(out_a), dtype=dt)
        if np.ndim(out_a) != 4:
            raise ValueError("out_a must be [batch][seq][heads][dv]")
        b, s, h = np.shape(out_a)[:3]
        n = b * h * s
        la = _in_f32(lse_a, n, "lse_a")
        lb = _in_f32(lse_b, n, "lse_b")
        if lse is lse_a and la is lse_a:
            lo = la
        elif lse is lse_b and lb is lse_b:
            lo = lb
        else:
            lo = _out_f32(lse, n, "lse", (b, h, s))
        ta, out_a = _tensor(out_a, "out_a")
        tb, out_b = _tensor(out_b, "out_b")
        to, _ = _tensor(out, "out", writable=True)
        self._run(_c.lcx_attention_merge(self._handle(), byref(ta), _ptr(la, c_float), byref(tb), _ptr(lb, c_float),
                                         byref(to), _ptr(lo, c_float)), "attention_merge")
        return out, lo

    def attention_s2_forward(self, q, k, v, group_size=None, out=None, *, mode="segments", shifted_head_start=-1,
                             shift=1, scale=0.0, exact_odd_group=False, dtype=None, return_lse=False, lse=None):
        """LongLoRA S2-Attn with the layout of attention_forward (seq_q = seq_k).
        group_size None = s2_default_group_size(seq); mode 'roll', 'segments'
        or 'ragged'."""
        out = self._attn_out(q, v, out, dtype)
        ls = self._lse_buf(q, lse, return_lse)
        p = lcx_s2_params()
        _c.lcx_s2_params_default(byref(p))
        p.group_size = s2_default_group_size(np.shape(q)[1]) if group_size is None else int(group_size)
        p.mode = _s2_mode(mode)
        p.shifted_head_start = int(shifted_head_start)
        p.shift = int(shift)
        p.scale = scale
        p.exact_odd_group = int(bool(exact_odd_group))
        tq, q = _tensor(q, "q")
        tk, k = _tensor(k, "k")
        tv, v = _tensor(v, "v")
        to, _ = _tensor(out, "out", writable=True)
        self._run(_c.lcx_attention_s2_forward(self._handle(), byref(p), byref(tq), byref(tk), byref(tv),
                                              byref(to), _ptr(ls, c_float)), "attention_s2_forward")
        return (out, ls) if ls is not None else out

    # -- LoRA --
    def lora_linear(self, x, w=None, bias=None, a=None, b=None, scale=1.0, y=None, accumulate=False, dtype=None):
        """y = [y +] x W^T + bias + scale (x A^T) B^T. x [tokens][in], W [out][in],
        bias [out], A [rank][in], B [out][rank]; y [tokens][out] (dtype: x's
        unless given)."""
        if y is None:
            if accumulate:
                raise ValueError("accumulate needs y")
            n_out = next((np.shape(t)[0] for t in (w, b, bias) if t is not None and np.ndim(t) >= 1), None)
            if n_out is None or np.ndim(x) < 1:
                raise ValueError("cannot infer y's shape: give w, b or bias, or y")
            dt = _np_dtype(dtype) if dtype is not None else np.asarray(x).dtype
            y = np.empty((np.shape(x)[0], n_out), dtype=dt)
        tx, x = _tensor(x, "x")
        keep = []   # arrays (or their copies) described to the C side, alive through the call
        ts = {}
        for nm, arr in (("w", w), ("bias", bias), ("a", a), ("b", b)):
            if arr is not None:
                ts[nm], arr2 = _tensor(arr, nm)
                keep.append(arr2)
        tw, tbias, ta, tb = (ts.get(nm) for nm in ("w", "bias", "a", "b"))
        ty, _ = _tensor(y, "y", writable=True)
        self._run(_c.lcx_lora_linear(self._handle(), byref(tx), byref(tw) if tw else None,
                                     byref(tbias) if tbias else None, byref(ta) if ta else None,
                                     byref(tb) if tb else None, float(scale), byref(ty), int(bool(accumulate))),
                  "lora_linear")
        return y

    def lora_batched(self, x, adapters, adapter_of_token, y):
        """y[t] += s_i (x[t] A_i^T) B_i^T, i = adapter_of_token[t] (-1: none), in place.
        adapters: sequence of (A [rank][in], B [out][rank], scale)."""
        adapters = list(adapters)
        arr = (lcx_lora_adapter * max(len(adapters), 1))()
        keep = []
        for i, ad in enumerate(adapters):
            if len(ad) != 3:
                raise ValueError("adapter %d must be (A, B, scale)" % i)
            ta, a2 = _tensor(ad[0], "adapters[%d].a" % i)
            tb, b2 = _tensor(ad[1], "adapters[%d].b" % i)
            arr[i].a = ta
            arr[i].b = tb
            arr[i].scale = float(ad[2])
            keep += [a2, b2]
        idx = _ints(adapter_of_token, "adapter_of_token", np.int32).reshape(-1)
        tokens = np.shape(x)[0] if np.ndim(x) >= 1 else 0
        if idx.size != tokens:
            raise ValueError("adapter_of_token has %d entries for %d tokens" % (idx.size, tokens))
        tx, x = _tensor(x, "x")
        ty, _ = _tensor(y, "y", writable=True)
        self._run(_c.lcx_lora_batched(self._handle(), byref(tx), arr, len(adapters), _ptr(idx, c_int32),
                                      byref(ty)), "lora_batched")
        return y

    def lora_merge(self, w, a, b, scale):
        """W += scale B A in place (unmerge with -scale). Returns w."""
        tw, _ = _tensor(w, "w", writable=True)
        ta, a = _tensor(a, "a")
        tb, b = _tensor(b, "b")
        self._run(_c.lcx_lora_merge(self._handle(), byref(tw), byref(ta), byref(tb), float(scale)), "lora_merge")
        return w


def _check_abi():
    v = version()
    if v >> 16 != ABI_MAJOR:
        raise ImportError("longctx: %s is version %s; this module mirrors the ABI of major version %d"
                          % (LIBRARY_PATH, version_string(), ABI_MAJOR))


_check_abi()
