"""Tests of the longctx Python binding against numpy float64 references.

Run: LONGCTX_LIB=build/lib/liblongctx.so python3 examples/python/test_longctx.py

Every op runs on each ISA this machine supports. Tolerances follow the
arithmetic: with u = 2^-24 (float32 unit roundoff), a sum of n float32 terms
is within about n * u * sum|terms| of the exact value; 16-bit outputs add
half an ulp of their format on top (they are rounded once from float32).
Inputs are drawn in the tested dtype, so the references see them exactly.
"""

import concurrent.futures
import ctypes
import math
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import longctx as lcx  # noqa: E402

U = 2.0 ** -24
ISAS = [n for n in ("scalar", "avx2", "avx512", "neon") if lcx.isa_supported(n)]
DTYPES = ("f32", "bf16", "f16")
NP = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16}
# (precision p incl. the implicit bit, minimum normal exponent, maximum exponent)
FMT = {"f32": (24, -126, 127), "f16": (11, -14, 15), "bf16": (8, -126, 127)}
CTX = {}
STATS = {} if os.environ.get("LONGCTX_TEST_STATS") else None   # worst error / tolerance per check


def setUpModule():
    for isa in ISAS:
        CTX[isa] = lcx.Context(isa=isa, threads=2)


def tearDownModule():
    for c in CTX.values():
        c.close()
    CTX.clear()
    if STATS:
        for what, r in sorted(STATS.items()):
            print("  %-24s worst error / tolerance %.3g" % (what, r), file=sys.stderr)


# ---------------------------------------------------------------------------
# numeric helpers (independent of the binding's own helpers)
# ---------------------------------------------------------------------------


def dt_of(a):
    return {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16", np.dtype(np.uint16): "bf16"}[a.dtype]


def decode(a):
    """float64 values of an f32 / f16 / bf16 (uint16 bits) array."""
    a = np.asarray(a)
    if a.dtype == np.uint16:
        return (a.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return a.astype(np.float64)


def round_to(x, dt):
    """x (float64) rounded to the nearest value of format dt, ties to even,
    subnormals kept, overflow to +-inf (computed by exact power-of-two
    scaling and numpy's half-to-even round)."""
    p, emin, emax = FMT[dt]
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()
    fin = np.isfinite(x) & (x != 0)
    ax = np.abs(x[fin])
    e = np.maximum(np.floor(np.log2(ax)), emin)
    q = np.exp2(e - (p - 1))
    r = np.round(x[fin] / q) * q
    big = np.abs(r) >= 2.0 ** (emax + 1)
    r[big] = np.copysign(np.inf, r[big])
    out[fin] = r
    return out


def encode(x, dt):
    """Exactly representable float64 values -> array of dtype dt."""
    x = np.asarray(x, dtype=np.float64)
    if dt == "bf16":
        return (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return x.astype(NP[dt])


def rand(rng, shape, dt, lo=-1.0, hi=1.0):
    return encode(round_to(rng.uniform(lo, hi, shape), dt), dt)


def half_ulp(ref, dt):
    """Half an ulp of format dt at |ref| (subnormal spacing below the normals)."""
    p, emin, _ = FMT[dt]
    a = np.abs(np.asarray(ref, dtype=np.float64))
    e = np.where(a > 0, np.floor(np.log2(np.where(a > 0, a, 1.0))), emin)
    return np.exp2(np.maximum(e, emin) - p)


def out_tol(ref, comp_err, dt):
    """float32 computation error comp_err, then one rounding to dt."""
    return comp_err + half_ulp(np.abs(ref) + comp_err, dt)


class Case(unittest.TestCase):
    def assertClose(self, got, ref, tol, what=""):
        g = decode(got) if not np.issubdtype(np.asarray(got).dtype, np.floating) or \
            np.asarray(got).dtype != np.float64 else np.asarray(got)
        ref = np.asarray(ref, dtype=np.float64)
        tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), ref.shape)
        self.assertEqual(g.shape, ref.shape, what)
        both_nan = np.isnan(g) & np.isnan(ref)
        same_inf = np.isinf(ref) & (g == ref)
        with np.errstate(invalid="ignore"):
            err = np.where(both_nan | same_inf, 0.0, np.abs(g - ref))
        bad = ~(err <= tol)
        if STATS is not None and err.size:
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(tol > 0, err / tol, np.where(err > 0, np.inf, 0))
            STATS[what] = max(STATS.get(what, 0.0), float(np.nanmax(r)))
        if bad.any():
            i = np.unravel_index(np.argmax(np.where(bad, err / np.maximum(tol, 1e-300), 0)), ref.shape)
            self.fail("%s: %d of %d outside tolerance; worst at %s: got %r ref %r tol %r"
                      % (what, int(bad.sum()), bad.size, i, g[i], ref[i], tol[i]))

    def assertLcxError(self, status, fn, *args, **kw):
        with self.assertRaises(lcx.LongctxError) as cm:
            fn(*args, **kw)
        e = cm.exception
        self.assertEqual(e.status, status, str(e))
        self.assertEqual(e.status_name, lcx.STATUS_NAMES[status])
        self.assertTrue(e.message, "empty error message")
        self.assertIn(e.status_name, str(e))
        return e

    def each_ctx(self):
        for isa in ISAS:
            with self.subTest(isa=isa):
                yield isa, CTX[isa]


# ---------------------------------------------------------------------------
# introspection, structs, tensors, contexts
# ---------------------------------------------------------------------------


class TestIntrospection(Case):
    def test_version(self):
        s = lcx.version_string()
        major, minor, patch = (int(x) for x in s.split("."))
        self.assertEqual(lcx.version(), (major << 16) | (minor << 8) | patch)
        vf = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "VERSION")
        if os.path.exists(vf):
            with open(vf) as fh:
                self.assertEqual(fh.read().strip(), s)

    def test_status_and_dtypes(self):
        for code, name in lcx.STATUS_NAMES.items():
            self.assertIn(name, lcx.status_string(code))
        self.assertEqual([lcx.dtype_size(d) for d in ("f32", "f16", "bf16")], [4, 2, 2])
        self.assertEqual(lcx.dtype_size(7), 0)
        self.assertEqual([lcx.dtype_name(d) for d in (lcx.F32, lcx.F16, lcx.BF16)], ["f32", "f16", "bf16"])
        self.assertEqual(lcx.dtype_name(np.uint16), "bf16")

    def test_isa(self):
        for name, v in lcx.ISAS.items():
            self.assertEqual(lcx.isa_from_name(name), v)
            self.assertEqual(lcx.isa_name(v), name)
        self.assertEqual(lcx.isa_name(99), "?")
        self.assertTrue(lcx.isa_supported(lcx.isa_best()))
        for n in ("scalar", "avx2", "avx512", "neon"):
            if lcx.isa_supported(n):
                self.assertTrue(lcx.isa_compiled(n))
        self.assertTrue(lcx.isa_supported("scalar"))
        self.assertIn(lcx.cuda_compiled(), (True, False))
        self.assertLcxError(lcx.E_INVALID, lcx.isa_from_name, "pentium")

    def test_ops_and_kernels(self):
        names = lcx.op_names()
        self.assertEqual(len(names), lcx.op_count())
        self.assertGreater(len(names), 0)
        self.assertIn("convert_f32_bf16", names)
        self.assertIsNone(lcx.op_name(len(names)))
        for isa, ctx in self.each_ctx():
            ks = ctx.kernels()
            self.assertTrue(ks["convert_f32_bf16"].startswith("lcx_k_convert_f32_bf16__"))
            e = self.assertLcxError(lcx.E_INVALID, ctx.kernel_name, "no_such_op")
            self.assertIn("no_such_op", e.message)

    def test_context(self):
        for isa, ctx in self.each_ctx():
            self.assertEqual(ctx.isa, isa)
            self.assertEqual(ctx.isa_id, lcx.ISAS[isa])
            self.assertEqual(ctx.device, lcx.DEVICE_CPU)
            self.assertEqual(ctx.n_threads, 2)
            info = ctx.info()
            self.assertEqual(info["n_threads"], 2)
            self.assertGreaterEqual(info["n_cores"], 1)
            self.assertGreaterEqual(info["n_pus"], info["n_cores"])
            self.assertGreaterEqual(info["n_numa"], 1)
            self.assertGreaterEqual(info["n_packages"], 1)
            self.assertIsInstance(info["cpu_model"], str)
            ctx.synchronize()
        with lcx.Context(threads=1) as c:
            self.assertEqual(c.n_threads, 1)
        self.assertRaises(ValueError, lambda: c.isa)   # closed
        missing = [n for n in ("avx2", "avx512", "neon") if not lcx.isa_supported(n)]
        if missing:
            self.assertLcxError(lcx.E_UNSUPPORTED, lcx.Context, isa=missing[0])
        self.assertLcxError(lcx.E_INVALID, lcx.Context, isa=42)

    def test_struct_defaults(self):
        """The *_default initialisers write the documented values at the
        offsets the binding declares (a layout check of every option struct)."""
        p = lcx.lcx_attention_params()
        lcx._c.lcx_attention_params_default(ctypes.byref(p))
        self.assertEqual(p.struct_size, ctypes.sizeof(p))
        self.assertEqual((p.scale, p.causal, p.softcap, p.n_seqs, p.pv_16bit), (0.0, 0, 0.0, 0, 0))
        self.assertLess(p.window_left, 0)
        self.assertFalse(p.cu_seqlens_q)
        self.assertFalse(p.cu_seqlens_k)
        s = lcx.lcx_s2_params()
        lcx._c.lcx_s2_params_default(ctypes.byref(s))
        self.assertEqual((s.struct_size, s.group_size, s.mode, s.shifted_head_start, s.shift, s.scale,
                          s.exact_odd_group), (ctypes.sizeof(s), 0, lcx.S2_MODES["segments"], -1, 1, 0.0, 0))
        r = lcx.RopeConfig()
        self.assertEqual(r._c.struct_size, ctypes.sizeof(lcx.lcx_rope_config))
        self.assertEqual((r.type, r.layout, r.head_dim, r.rotary_dim, r.base, r.factor, r.max_position,
                          r.original_max_position, r.truncate, r.attention_factor, r.mscale, r.mscale_all_dim,
                          r.low_freq_factor, r.high_freq_factor, r.n_hat, r.precision),
                         (0, 0, 128, 0, 10000.0, 1.0, 2048, 0, 1, 0.0, 0.0, 0.0, 1.0, 4.0, 0, 0))
        self.assertIn((r.beta_fast, r.beta_slow), ((32.0, 1.0), (0.0, 0.0)))
        self.assertFalse(r._c.short_factor)
        self.assertFalse(r._c.long_factor)
        c = lcx.lcx_longrope_search_config()
        lcx._c.lcx_longrope_search_config_default(ctypes.byref(c))
        self.assertEqual((c.struct_size, c.rotary_dim, c.scale, c.population, c.iterations, c.mutations,
                          c.crossovers, c.parents, c.step, c.probability, c.crossover_retries, c.max_attempts,
                          c.base, c.original_max_position, c.beta_fast, c.beta_slow, c.n_n_hat, c.seed),
                         (ctypes.sizeof(c), 128, 8.0, 64, 40, 16, 16, 32, 0.01, 0.3, 20, 1000, 1e4, 4096, 32.0,
                          1.0, 0, 42))
        self.assertIn(c.upper_bound, (0.0, 9.0))
        self.assertFalse(c.initial_factors)
        self.assertFalse(c.progress)
        o = lcx.lcx_context_options()
        lcx._c.lcx_context_options_default(ctypes.byref(o))
        self.assertEqual((o.struct_size, o.device, o.isa, o.n_threads, o.pin_threads, o.cuda_device),
                         (ctypes.sizeof(o), 0, 0, 0, 0, 0))
        self.assertFalse(o.parallel_for)
        self.assertFalse(o.cuda_stream)
        i = lcx.lcx_context_info()
        lcx._c.lcx_context_info_default(ctypes.byref(i))
        self.assertEqual(i.struct_size, ctypes.sizeof(i))
        if ctypes.sizeof(ctypes.c_void_p) == 8:   # LP64 sizes of the headers' structs
            self.assertEqual([ctypes.sizeof(t) for t in (lcx.lcx_tensor, lcx.lcx_random, lcx.lcx_lora_adapter,
                                                         lcx.lcx_context_info)], [80, 48, 168, 152])

    def test_tensor_struct(self):
        """The binding's lcx_tensor for a dense array equals lcx_tensor_init's."""
        a = np.zeros((3, 4, 5), np.float16)
        t, _ = lcx._tensor(a, "a")
        ref = lcx.lcx_tensor()
        shape = (ctypes.c_int64 * 3)(3, 4, 5)
        self.assertEqual(lcx.lib.lcx_tensor_init(ctypes.byref(ref), ctypes.c_void_p(a.ctypes.data), lcx.F16, 3,
                                                 shape), 0)
        self.assertEqual((t.data, t.dtype, t.ndim, list(t.shape)[:3], list(t.stride)[:3]),
                         (ref.data, ref.dtype, ref.ndim, list(ref.shape)[:3], list(ref.stride)[:3]))
        self.assertEqual(list(t.stride)[:3], [20, 5, 1])
        v = np.zeros((6, 10), np.float32)[1:5, 2:9]
        t, arr = lcx._tensor(v, "v")
        self.assertIs(arr, v)
        self.assertEqual((list(t.shape)[:2], list(t.stride)[:2]), ([4, 7], [10, 1]))
        self.assertEqual(t.data, v.ctypes.data)

    def test_tensor_validate_numel(self):
        a = np.zeros((2, 3, 4), np.uint16)
        lcx.tensor_validate(a, "a", writable=True)
        self.assertEqual(lcx.tensor_numel(a), 24)
        bcast = np.broadcast_to(np.zeros((1, 4), np.float32), (3, 4))   # row stride 0: readable, not writable
        lcx.tensor_validate(bcast, "b", writable=False)
        e = self.assertLcxError(lcx.E_INVALID, lcx.tensor_validate, bcast, "bcast", writable=True)
        self.assertIn("bcast", e.message)
        self.assertRaises(TypeError, lcx.tensor_validate, np.zeros(3, np.float64))
        self.assertRaises(ValueError, lcx.tensor_validate, np.zeros((1,) * 5, np.float32))


# ---------------------------------------------------------------------------
# conversion
# ---------------------------------------------------------------------------


def special_values():
    v = [0.0, -0.0, 1.0, -1.5, 65504.0, 65519.99, 65520.0, -70000.0, 1e-8, -3e-7, 6e-8, 2.0 ** -24 * 1.5,
         2.0 ** -133, -(2.0 ** -140), 1e38, 3.4e38, np.inf, -np.inf, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -9,
         1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -12, 2.0 ** -126, 2.0 ** -149]
    return np.array(v, np.float64)


class TestConvert(Case):
    def test_all_pairs(self):
        rng = np.random.default_rng(1)
        base = np.concatenate([special_values(), rng.standard_normal(2000) * 10.0 ** rng.integers(-9, 6, 2000)])
        for isa, ctx in self.each_ctx():
            for sd in DTYPES:
                src = encode(round_to(base, sd), sd)
                for dd in DTYPES:
                    with self.subTest(src=sd, dst=dd):
                        out = ctx.convert(src, dd)
                        self.assertEqual(out.dtype, NP[dd])
                        ref = round_to(decode(src), dd)
                        self.assertClose(out, ref, 0.0, "%s->%s" % (sd, dd))
                        self.assertTrue(np.array_equal(np.signbit(decode(out)), np.signbit(ref)))

    def test_strided(self):
        rng = np.random.default_rng(2)
        for isa, ctx in self.each_ctx():
            src = rng.standard_normal((4, 6, 9)).astype(np.float32)[:, 1:5, :7]   # a view, no copy
            buf = np.full((4, 5, 12), 0x7E00, np.uint16)                          # guard pattern
            dst = buf[:, :4, 3:10]
            r = ctx.convert(src, out=dst)
            self.assertIs(r, dst)
            self.assertClose(dst, round_to(decode(src), "bf16"), 0.0, "strided")
            self.assertTrue((buf[:, 4, :] == 0x7E00).all() and (buf[:, :, :3] == 0x7E00).all()
                            and (buf[:, :, 10:] == 0x7E00).all(), "wrote outside the view")
            # inner dimension not contiguous: the input is copied, an output is refused
            x = rng.standard_normal((5, 8)).astype(np.float32)
            self.assertClose(ctx.convert(x[:, ::2], "f16"), round_to(decode(x[:, ::2]), "f16"), 0.0, "copied in")
            self.assertRaises(ValueError, ctx.convert, x[:, :4], out=np.zeros((5, 8), np.float16)[:, ::2])
            self.assertRaises(TypeError, ctx.convert, x.astype(np.float64), "bf16")

    def test_nan(self):
        ctx = CTX[ISAS[0]]
        f = np.array([0x7F812345, 0xFFC00001, 0x7FBFFFFF], np.uint32).view(np.float32)
        self.assertEqual(ctx.convert(f, "bf16").tolist(), [0x7FC1, 0xFFC0, 0x7FFF])
        self.assertEqual(ctx.convert(f, "f16").view(np.uint16).tolist(), [0x7E09, 0xFE00, 0x7FFF])
        b = np.array([0x7F81, 0xFFC1], np.uint16)                         # bf16 -> f32: exact bit widening
        self.assertEqual(ctx.convert(b, "f32").view(np.uint32).tolist(), [0x7F810000, 0xFFC10000])
        h = np.array([0x7C01, 0xFE00], np.uint16).view(np.float16)          # f16 -> f32 quiets
        self.assertEqual(ctx.convert(h, "f32").view(np.uint32).tolist(), [0x7FC02000, 0xFFC00000])

    def test_error(self):
        for isa, ctx in self.each_ctx():
            e = self.assertLcxError(lcx.E_INVALID, ctx.convert, np.zeros((3, 4), np.float32),
                                    out=np.zeros((3, 5), np.uint16))
            self.assertIn("shape", e.message)
            buf = np.zeros(16, np.float32)   # overlapping src and dst
            self.assertLcxError(lcx.E_INVALID, ctx.convert, buf[:8], out=buf[4:12])


# ---------------------------------------------------------------------------
# RoPE
# ---------------------------------------------------------------------------

LD = np.longdouble


def g_mscale(s, m):
    return 1.0 if s <= 1 else 1.0 + 0.1 * m * math.log(s)


def rope_ref(cfg, L):
    """(theta as long double [d/2], a, theta0) from the spec's formulas."""
    d = cfg.rotary_dim or cfg.head_dim
    i = np.arange(d // 2, dtype=LD)
    b = LD(cfg.base)
    t0 = b ** (-2 * i / d)
    s = cfg.factor
    typ = {v: k for k, v in lcx.ROPE_TYPES.items()}[cfg.type]
    L0 = cfg.original_max_position or cfg.max_position
    a = 1.0
    if typ == "default":
        th = t0
    elif typ == "linear":
        th = t0 / LD(s)
    elif typ == "ntk":
        th = (b * LD(s) ** (LD(d) / (d - 2))) ** (-2 * i / d)
    elif typ == "dynamic":
        L0d = cfg.max_position
        Lx = max(L, L0d)
        th = (b * (LD(s) * Lx / L0d - (LD(s) - 1)) ** (LD(d) / (d - 2))) ** (-2 * i / d)
    elif typ == "yarn":
        if s == 0:
            s = cfg.max_position / L0
        bf = cfg.beta_fast or 32.0
        bs = cfg.beta_slow or 1.0

        def corr(r):
            return d * math.log(L0 / (2 * math.pi * r)) / (2 * math.log(cfg.base))
        lo, hi = corr(bf), corr(bs)
        if cfg.truncate:
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, d - 1)
        if lo == hi:
            hi += 0.001
        ramp = np.clip((i - LD(lo)) / LD(hi - lo), 0, 1)
        w = 1 - ramp
        th = t0 * (w + (1 - w) / LD(s))
        if cfg.attention_factor:
            a = cfg.attention_factor
        elif cfg.mscale and cfg.mscale_all_dim:
            a = g_mscale(s, cfg.mscale) / g_mscale(s, cfg.mscale_all_dim)
        else:
            a = g_mscale(s, 1.0)
    elif typ == "llama3":
        lam = 2 * LD(math.pi) / t0
        lo_f, hi_f = cfg.low_freq_factor, cfg.high_freq_factor
        sigma = (LD(L0) / lam - lo_f) / (hi_f - lo_f)
        th = np.where(lam < L0 / hi_f, t0, np.where(lam > L0 / lo_f, t0 / LD(s),
                                                       (1 - sigma) * t0 / LD(s) + sigma * t0))
    elif typ == "longrope":
        if s == 0:
            s = cfg.max_position / L0
        if cfg.attention_factor:
            a = cfg.attention_factor
        else:
            a = 1.0 if s <= 1 else math.sqrt(1 + math.log(s) / math.log(L0))
        lam = cfg.long_factor if L > L0 else cfg.short_factor
        th = t0 / np.asarray(lam, dtype=LD)
    return th, a, t0


def rotate_ref(x, layout, d, theta, a, pos):
    """x [b][s][h][D] (float64), pos [b][s]; theta / a per token: arrays
    [b][s][d/2] (long double) and [b][s]."""
    x = x.astype(LD)
    ang = theta
    c = (np.cos(ang) * a[..., None])[:, :, None, :]
    sn = (np.sin(ang) * a[..., None])[:, :, None, :]
    y = x.copy()
    if layout == 0:
        u, v = x[..., :d // 2], x[..., d // 2:d]
        y[..., :d // 2] = u * c - v * sn
        y[..., d // 2:d] = v * c + u * sn
    else:
        u, v = x[..., 0:d:2], x[..., 1:d:2]
        y[..., 0:d:2] = u * c - v * sn
        y[..., 1:d:2] = v * c + u * sn
    return y.astype(np.float64)


def rope_tol(x, layout, d, a, ref, dt, per_rad=4e-7):
    """Angle error about 2e-7 rad (precise mode) plus float32 rotation
    arithmetic, on |u| + |v| of each pair, then the rounding to dt."""
    ax = np.abs(x)
    m = np.zeros_like(ax)
    if layout == 0:
        s = ax[..., :d // 2] + ax[..., d // 2:d]
        m[..., :d // 2] = s
        m[..., d // 2:d] = s
    else:
        s = ax[..., 0:d:2] + ax[..., 1:d:2]
        m[..., 0:d:2] = s
        m[..., 1:d:2] = s
    err = m * np.asarray(a)[..., None, None] * (per_rad + 6 * U)
    return out_tol(ref, err, dt)


def longrope_factors(n, seed):
    r = np.random.default_rng(seed)
    return np.sort(1.0 + r.uniform(0, 8, n))


ROPE_CONFIGS = [
    dict(type="default", head_dim=64),
    dict(type="default", head_dim=64, base=5e5, layout="interleaved"),
    dict(type="linear", head_dim=48, factor=4.0),
    dict(type="ntk", head_dim=64, factor=4.0),
    dict(type="dynamic", head_dim=64, factor=4.0, max_position=256),
    dict(type="yarn", head_dim=64, base=1e6, factor=4.0, original_max_position=32768),
    dict(type="yarn", head_dim=64, base=150000.0, factor=32.0, original_max_position=4096, truncate=0),
    dict(type="yarn", head_dim=64, rotary_dim=32, factor=40.0, original_max_position=4096, mscale=0.707,
         mscale_all_dim=0.707, layout="interleaved"),
    dict(type="yarn", head_dim=64, factor=40.0, original_max_position=4096, mscale=1.0, mscale_all_dim=0.707),
    dict(type="llama3", head_dim=64, base=5e5, factor=8.0, original_max_position=8192),
    dict(type="longrope", head_dim=48, original_max_position=4096, max_position=131072,
         short_factor=longrope_factors(24, 1), long_factor=longrope_factors(24, 2)),
]


class TestRope(Case):
    def test_frequencies(self):
        for kw in ROPE_CONFIGS:
            cfg = lcx.RopeConfig(**kw)
            for L in (1, 300, 5000):
                with self.subTest(cfg=kw, L=L):
                    th, a = lcx.rope_frequencies(cfg, L)
                    rth, ra, _ = rope_ref(cfg, L)
                    self.assertClose(th, rth.astype(np.float64), 1e-13 * rth.astype(np.float64), "theta")
                    self.assertAlmostEqual(a, ra, places=13)
            lcx.rope_config_validate(cfg)
            cfg.validate()

    def test_softmax_multiplier(self):
        self.assertEqual(lcx.rope_softmax_scale_multiplier(type="default"), 1.0)
        m = lcx.rope_softmax_scale_multiplier(type="yarn", factor=40.0, original_max_position=4096, mscale=1.0,
                                              mscale_all_dim=1.0)
        self.assertAlmostEqual(m, g_mscale(40.0, 1.0) ** 2, places=13)
        self.assertAlmostEqual(m, 1.8738542, places=6)
        self.assertLcxError(lcx.E_INVALID, lcx.rope_softmax_scale_multiplier, type="yarn", base=0.5)

    def test_apply(self):
        rng = np.random.default_rng(3)
        B, S, H, KVH = 2, 5, 3, 1
        for kw in ROPE_CONFIGS:
            cfg = lcx.RopeConfig(**kw)
            D = cfg.head_dim
            d = cfg.rotary_dim or D
            L = 5000
            pos = rng.integers(0, 2 ** 31 - 1, (B, S))
            pos[0, :3] = [0, 1, 7]
            th, a, t0 = rope_ref(cfg, L)
            pl = pos.astype(LD)[..., None]
            theta = pl * th
            amp = np.full((B, S), a)
            for isa, ctx in self.each_ctx():
                for dt in DTYPES:
                    with self.subTest(cfg=kw, dt=dt):
                        fused = rand(rng, (B, S, H + 2 * KVH, D), dt)   # q, k, v heads of a fused QKV buffer
                        before = fused.copy()
                        q, k = fused[:, :, :H, :], fused[:, :, H:H + KVH, :]
                        with ctx.rope(cfg, L) as rope:
                            rope.apply(q, k, pos)
                        for got, x0 in ((q, before[:, :, :H]), (k, before[:, :, H:H + KVH])):
                            x = decode(x0)
                            ref = rotate_ref(x, cfg.layout, d, theta, amp, pos)
                            self.assertClose(got, ref, rope_tol(x, cfg.layout, d, amp, ref, dt), "rope " + dt)
                        self.assertTrue(np.array_equal(fused[:, :, H + KVH:], before[:, :, H + KVH:]), "v touched")
                        self.assertTrue(np.array_equal(fused[..., d:], before[..., d:]), "dims >= d touched")

    def test_apply_default_positions_and_hf(self):
        rng = np.random.default_rng(4)
        cfg = lcx.RopeConfig(type="yarn", head_dim=32, factor=4.0, original_max_position=1024)
        th, a, _ = rope_ref(cfg, 0)
        for isa, ctx in self.each_ctx():
            q = rand(rng, (2, 7, 2, 32), "f32")
            x = decode(q)
            pos = np.tile(np.arange(7), (2, 1))
            ref = rotate_ref(x, 0, 32, pos.astype(LD)[..., None] * th, np.full((2, 7), a), pos)
            with ctx.rope(cfg, 0) as rope:
                rope.apply(q=q)                       # positions None = 0..seq-1
                self.assertClose(q, ref, rope_tol(x, 0, 32, np.full((2, 7), a), ref, "f32"), "default positions")
            # HF float32 mode: the spec's parity tolerance 1e-6 + 2.5e-7 p max(theta) max|x|
            hf = lcx.RopeConfig(type="default", head_dim=32, precision="hf_f32")
            th0, _, _ = rope_ref(hf, 0)
            k = rand(rng, (1, 6, 1, 32), "f32")
            x = decode(k)
            pos = np.array([[0, 1, 7, 4095, 4096, 32767]])
            ref = rotate_ref(x, 0, 32, pos.astype(LD)[..., None] * th0, np.ones((1, 6)), pos)
            with ctx.rope(hf) as rope:
                rope.apply(k=k, positions=pos)
            tol = 1e-6 + 2.5e-7 * pos[..., None, None] * 1.0 * np.abs(x).max() + 4 * U
            self.assertClose(k, ref, tol, "hf_f32")

    def test_longrope_n_hat_set_length_get(self):
        rng = np.random.default_rng(5)
        kw = dict(ROPE_CONFIGS[-1], n_hat=3)
        cfg = lcx.RopeConfig(**kw)
        for isa, ctx in self.each_ctx():
            with ctx.rope(cfg, 100) as rope:
                th, a, rd = rope.get()
                rth, ra, t0 = rope_ref(cfg, 100)
                self.assertEqual(rd, 48)
                self.assertClose(th, rth.astype(np.float64), 1e-13 * rth.astype(np.float64), "short set")
                self.assertAlmostEqual(a, ra, places=13)
                rope.set_length(5000)
                th, a, _ = rope.get()
                rth, ra, t0 = rope_ref(cfg, 5000)
                self.assertClose(th, rth.astype(np.float64), 1e-13 * rth.astype(np.float64), "long set")
                pos = np.array([[0, 1, 2, 3, 4, 4096, 100000]])
                k = rand(rng, (1, 7, 2, 48), "f32")
                x = decode(k)
                rope.apply(k=k, positions=pos)
                early = (pos < 3)
                theta = np.where(early[..., None], pos.astype(LD)[..., None] * t0, pos.astype(LD)[..., None] * rth)
                amp = np.where(early, 1.0, ra)
                ref = rotate_ref(x, 0, 48, theta, amp, pos)
                self.assertClose(k, ref, rope_tol(x, 0, 48, amp, ref, "f32"), "n_hat")
            # dynamic NTK recomputes for the new length
            dyn = lcx.RopeConfig(**ROPE_CONFIGS[4])
            with ctx.rope(dyn, 10) as rope:
                rope.set_length(1000)
                th, _, _ = rope.get()
                rth, _, _ = rope_ref(dyn, 1000)
                self.assertClose(th, rth.astype(np.float64), 1e-13 * rth.astype(np.float64), "dynamic")

    def test_rerotate_shift(self):
        rng = np.random.default_rng(6)
        cfg = ROPE_CONFIGS[-1]
        short = lcx.RopeConfig(**cfg)
        for isa, ctx in self.each_ctx():
            for dt in DTYPES:
                with self.subTest(dt=dt), ctx.rope(short, 10) as frm, ctx.rope(short, 10000) as to:
                    pos = rng.integers(0, 2 ** 20, (2, 4))
                    k = rand(rng, (2, 4, 2, 48), dt)
                    x = decode(k)
                    frm.rerotate(to, k, pos)
                    ths, _, _ = rope_ref(short, 10)
                    thl, _, _ = rope_ref(short, 10000)
                    theta = pos.astype(LD)[..., None] * (thl - ths)
                    one = np.ones((2, 4))
                    ref = rotate_ref(x, 0, 48, theta, one, pos)
                    self.assertClose(k, ref, rope_tol(x, 0, 48, one, ref, dt), "rerotate " + dt)
                    # context shift by delta: rotation delta * theta, magnitude 1
                    k2 = rand(rng, (1, 3, 1, 48), dt)
                    x = decode(k2)
                    to.shift(k2, -1234)
                    ref = rotate_ref(x, 0, 48, np.full((1, 3, 24), LD(-1234)) * thl, np.ones((1, 3)), None)
                    self.assertClose(k2, ref, rope_tol(x, 0, 48, np.ones((1, 3)), ref, dt), "shift " + dt)

    def test_errors(self):
        ctx = CTX[ISAS[0]]
        e = self.assertLcxError(lcx.E_INVALID, lcx.rope_config_validate, head_dim=64, rotary_dim=33)
        self.assertIn("rotary_dim", e.message)
        self.assertLcxError(lcx.E_INVALID, lcx.rope_frequencies, lcx.RopeConfig(type="longrope"), 10)
        self.assertLcxError(lcx.E_INVALID, ctx.rope, head_dim=64, base=1.0)
        self.assertRaises(ValueError, lcx.RopeConfig, type="sinusoid")
        self.assertRaises(ValueError, lcx.RopeConfig(type="longrope", head_dim=64, short_factor=[1.0] * 3,
                                                     long_factor=[1.0] * 32)._struct)
        with ctx.rope(head_dim=16) as r16, ctx.rope(head_dim=32) as r32:
            q = np.zeros((1, 2, 1, 16), np.float32)
            self.assertLcxError(lcx.E_INVALID, r16.apply, q=q[0])                              # 3-D
            self.assertLcxError(lcx.E_INVALID, r16.apply, q=q, positions=[[0, 2 ** 31]])       # position range
            self.assertLcxError(lcx.E_INVALID, r16.rerotate, r32, q)                           # head_dim differs
            self.assertLcxError(lcx.E_INVALID, r32.shift, q, 1)                                # head_dim 32 vs 16
            self.assertLcxError(lcx.E_INVALID, r16.set_length, -1)
            self.assertRaises(ValueError, r16.apply, q=q, positions=[0, 1, 2])                # wrong count
            self.assertRaises(ValueError, r16.apply, q=np.zeros((1, 2, 1, 32), np.float32)[..., ::2])
        lr = lcx.RopeConfig(**dict(ROPE_CONFIGS[-1], n_hat=4))
        with ctx.rope(lr, 10) as r:
            self.assertLcxError(lcx.E_INVALID, r.shift, np.zeros((1, 1, 1, 48), np.float32), 3)
            r.get()
        self.assertRaises(ValueError, r.get)   # closed


# ---------------------------------------------------------------------------
# positions and the random stream
# ---------------------------------------------------------------------------

M32 = 0xFFFFFFFF


def philox(ctr, key):
    ctr = list(ctr)
    key = list(key)
    for _ in range(10):
        p0 = 0xD2511F53 * ctr[0]
        p1 = 0xCD9E8D57 * ctr[2]
        ctr = [((p1 >> 32) ^ ctr[1] ^ key[0]) & M32, p1 & M32, ((p0 >> 32) ^ ctr[3] ^ key[1]) & M32, p0 & M32]
        key = [(key[0] + 0x9E3779B9) & M32, (key[1] + 0xBB67AE85) & M32]
    return ctr


class PyRandom:
    """The stream positions.h documents, in plain Python."""

    def __init__(self, seed, stream):
        self.key = [seed & M32, seed >> 32]
        self.stream = stream
        self.block = 0
        self.buf = []

    def u32(self):
        if not self.buf:
            b, s = self.block, self.stream
            self.buf = philox([b & M32, b >> 32, s & M32, s >> 32], self.key)
            self.block += 1
        return self.buf.pop(0)

    def u64(self):
        hi = self.u32()
        return (hi << 32) | self.u32()

    def below(self, n):
        m = self.u64() * n
        lo = m & (2 ** 64 - 1)
        if lo < n:
            t = (2 ** 64 - n) % n
            while lo < t:
                m = self.u64() * n
                lo = m & (2 ** 64 - 1)
        return m >> 64

    def range(self, lo, hi):
        return lo + self.below(hi - lo + 1)


class TestPositions(Case):
    def test_philox_known_answers(self):
        self.assertEqual(philox([0, 0, 0, 0], [0, 0]), [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8])
        self.assertEqual(philox([M32] * 4, [M32, M32]), [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD])
        self.assertEqual(philox([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0]),
                         [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1])
        r = lcx.Random(0, 0)
        self.assertEqual([r.u32() for _ in range(4)], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8])
        # the pi vector through the struct's fields (block, stream, seed)
        r = lcx.Random(0x299F31D0A4093822, 0x0370734413198A2E)
        r._r.block = 0x85A308D3243F6A88
        self.assertEqual([r.u32() for _ in range(4)], [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1])
        self.assertEqual(r.state[2], 0x85A308D3243F6A89)

    def test_stream(self):
        for seed, stream in ((1, 0), (2 ** 40 + 7, 3), (12345, 2 ** 63 + 5)):
            r, p = lcx.Random(seed, stream), PyRandom(seed, stream)
            self.assertEqual([r.u32() for _ in range(9)], [p.u32() for _ in range(9)])
            self.assertEqual([r.u64() for _ in range(5)], [p.u64() for _ in range(5)])
            for n in (1, 2, 3, 10, 2 ** 33 + 1, 2 ** 63 + 12345, 2 ** 64 - 1):
                self.assertEqual(r.below(n), p.below(n))
            for lo, hi in ((0, 9), (-5, 5), (1, 2 ** 40), (-(2 ** 62), 2 ** 62)):
                self.assertEqual(r.range(lo, hi), p.range(lo, hi))
            c = r.copy()
            self.assertEqual([c.u32() for _ in range(5)], [r.u32() for _ in range(5)])
        self.assertEqual(lcx.Random(1).below(0), 0)

    def test_pose_transform(self):
        # the spec's worked example: L_c 8, L_t 32, L 20, rt1 3, rt2 14, skip 17
        idx, pos = lcx.pose_transform([3, 5], [0, 17], [0, 14 - 8], doc_len=20, target_len=32)
        self.assertEqual(idx.tolist(), [0, 1, 2, 9, 10, 11, 12, 13])
        self.assertEqual(pos.tolist(), [0, 1, 2, 20, 21, 22, 23, 24])
        ln, sk, ct = [2, 0, 3, 1], [0, 4, 4, 9], [0, 1, 5, 5]
        idx, pos = lcx.pose_transform(ln, sk, ct, doc_len=30, target_len=20)
        ri, rp, st = [], [], 0
        for l_, s_, c_ in zip(ln, sk, ct):
            ri += [c_ + st + j for j in range(l_)]
            rp += [s_ + st + j for j in range(l_)]
            st += l_
        self.assertEqual((idx.tolist(), pos.tolist()), (ri, rp))
        idx, pos = lcx.pose_transform([4], [2], doc_len=4, target_len=6)        # content None = prefix
        self.assertEqual((idx.tolist(), pos.tolist()), ([0, 1, 2, 3], [2, 3, 4, 5]))
        self.assertLcxError(lcx.E_INVALID, lcx.pose_transform, [3, 5], [17, 0], doc_len=20, target_len=32)
        self.assertRaises(ValueError, lcx.pose_transform, [3, 5], [0], doc_len=20, target_len=32)

    def test_pose_sample(self):
        for seed, (doc, win, tgt) in enumerate([(100, 16, 64), (10, 16, 64), (5000, 256, 4096), (16, 16, 16)]):
            r, p = lcx.Random(seed, 1), PyRandom(seed, 1)
            for _ in range(5):
                idx, pos = lcx.pose_sample(r, doc, win, tgt)
                w = min(doc, win)
                rt1 = p.range(1, (w + 1) // 2)
                rt2 = p.range(w, doc) if doc > w else w
                skip = p.range(0, tgt - w) if tgt > w else 0
                self.assertEqual(idx.tolist(), list(range(rt1)) + list(range(rt2 - (w - rt1), rt2)))
                self.assertEqual(pos.tolist(), list(range(rt1)) + [j + skip for j in range(rt1, w)])
        self.assertLcxError(lcx.E_INVALID, lcx.pose_sample, lcx.Random(1), 100, 16, 8)   # target < window
        self.assertLcxError(lcx.E_INVALID, lcx.pose_sample, None, 100, 16, 64)                 # no rng

    def test_sample_batches(self):
        for isa in ISAS:
            ctx = CTX[isa]
            docs = [5, 300, 40, 1000, 17]
            for n_chunks in (0, 3):
                idx, pos, n = ctx.pose_sample_batch(2024, 7, docs, 32, 2048, n_chunks)
                for r, d in enumerate(docs):
                    rng = lcx.Random(2024, 7 + r)
                    if n_chunks:
                        i1, p1 = lcx.pose_sample_chunks(rng, d, 32, 2048, n_chunks)
                    else:
                        i1, p1 = lcx.pose_sample(rng, d, 32, 2048)
                    self.assertEqual(n[r], len(i1))
                    self.assertEqual(idx[r, :n[r]].tolist(), i1.tolist())
                    self.assertEqual(pos[r, :n[r]].tolist(), p1.tolist())
                    self.assertTrue((idx[r, n[r]:] == -1).all())
            rp = ctx.randpos_sample_batch(9, 1, 4, 20, 100)
            for r in range(4):
                self.assertEqual(rp[r].tolist(), lcx.randpos_sample(lcx.Random(9, 1 + r), 20, 100).tolist())
            self.assertLcxError(lcx.E_INVALID, ctx.pose_sample_batch, 1, 1, [0, 5], 8, 32)  # empty document
            self.assertLcxError(lcx.E_INVALID, ctx.randpos_sample_batch, 1, 1, 2, 30, 20)  # n > target_len

    def test_pose_sample_chunks(self):
        r = lcx.Random(9, 0)
        for n_chunks in (1, 2, 5, 16):
            for _ in range(5):
                idx, pos = lcx.pose_sample_chunks(r, 1000, 64, 512, n_chunks)
                self.assertEqual(idx.size, 64)
                self.assertEqual((idx[0], pos[0]), (0, 0))
                self.assertTrue((np.diff(idx) >= 1).all() and (np.diff(pos) >= 1).all())
                self.assertTrue(idx[-1] < 1000 and pos[-1] < 512)
                breaks = np.count_nonzero((np.diff(idx) != 1) | (np.diff(pos) != 1))
                self.assertLessEqual(breaks, n_chunks - 1)
        self.assertLcxError(lcx.E_INVALID, lcx.pose_sample_chunks, r, 1000, 64, 512, 0)

    def test_split_units(self):
        toks = [5, 13, 7, 7, 198, 30, 4, 4]
        self.assertEqual(lcx.split_units(toks, [13, 198, 30]).tolist(), [2, 5, 6, 8])
        self.assertEqual(lcx.split_units([1, 2, 3], [9]).tolist(), [3])
        self.assertEqual(lcx.split_units([9, 9], [9]).tolist(), [1, 2])
        self.assertEqual(lcx.split_units([1, 2], []).tolist(), [2])
        self.assertRaises(TypeError, lcx.split_units, [1.5, 2.0], [9])
        # the binding always passes a valid count and pointers; the C refusal, through the same check:
        self.assertLcxError(lcx.E_INVALID, lambda: lcx._check(
            lcx._c.lcx_split_units(None, -1, None, 0, None, None), "split_units"))

    def test_gap_template(self):
        # the spec's worked example: units [[0],[1,2,3],[4,5]], base 6, ext 10, slots {0,3,6}
        self.assertEqual(lcx.gap_template([1, 3, 2], 4, slots=[0, 3, 6]).tolist(), [0, 3, 4, 5, 8, 9])
        self.assertEqual(lcx.gap_template([1, 3, 2], 4, slots=[0, 3, 6], released_quirk=True).tolist(),
                         [2, 3, 4, 5, 8, 9])
        rng = np.random.default_rng(7)
        for _ in range(20):
            U_ = int(rng.integers(1, 8))
            lens = rng.integers(1, 5, U_)
            extra = int(rng.integers(0, 10))
            slots = np.sort(rng.choice(np.arange(1, extra + U_), U_ - 1, replace=False)) if U_ > 1 else []
            slots = np.concatenate([[0], slots]).astype(np.int64)
            ref = []
            for u, n in enumerate(lens):
                start = int(lens[:u].sum())
                ref += [start + t + int(slots[u]) - u for t in range(n)]
            self.assertEqual(lcx.gap_template(lens, extra, slots=slots).tolist(), ref)
        r = lcx.Random(3)
        lens = [3, 1, 4, 1, 5]
        pos = lcx.gap_template(lens, 20, rng=r)
        self.assertEqual(pos[0], 0)
        self.assertTrue((np.diff(pos) >= 1).all() and pos[-1] < sum(lens) + 20)
        ends = np.cumsum(lens)
        for s0, e0 in zip(np.concatenate([[0], ends[:-1]]), ends):
            self.assertTrue((np.diff(pos[s0:e0]) == 1).all(), "unit not contiguous")
        self.assertLcxError(lcx.E_INVALID, lcx.gap_template, [1, 3, 2], 4)              # neither slots nor rng
        self.assertLcxError(lcx.E_INVALID, lcx.gap_template, [1, 3, 2], 4, slots=[0, 3, 9])

    def test_prefix_then_template(self):
        tpl = [2, 3, 4, 5, 8, 9, 11]
        self.assertEqual(lcx.prefix_then_template(3, tpl).tolist(), [0, 1, 2, 5, 8, 9, 11])
        self.assertLcxError(lcx.E_INVALID, lcx.prefix_then_template, 0, tpl)

    def test_randpos(self):
        r = lcx.Random(11)
        for n, t in ((1, 1), (10, 10), (50, 1000), (0, 5)):
            p = lcx.randpos_sample(r, n, t)
            self.assertEqual(p.size, n)
            self.assertTrue((np.diff(p) >= 1).all() and (p >= 0).all() and (p < t).all())
        a = lcx.randpos_sample(lcx.Random(5, 2), 30, 100)
        self.assertEqual(a.tolist(), lcx.randpos_sample(lcx.Random(5, 2), 30, 100).tolist())
        self.assertLcxError(lcx.E_INVALID, lcx.randpos_sample, r, 11, 10)

    def test_offset_packed(self):
        self.assertEqual(lcx.positions_offset(4, 10).tolist(), [10, 11, 12, 13])
        self.assertEqual(lcx.positions_offset(0, 3).tolist(), [])
        self.assertLcxError(lcx.E_INVALID, lcx.positions_offset, 3, -1)
        self.assertEqual(lcx.positions_packed([0, 3, 3, 5]).tolist(), [0, 1, 2, 0, 1])
        self.assertLcxError(lcx.E_INVALID, lcx.positions_packed, [0, 3, 2])
        self.assertLcxError(lcx.E_INVALID, lcx.positions_packed, [1, 3])


# ---------------------------------------------------------------------------
# recipe tools
# ---------------------------------------------------------------------------


def logprob_ref(x, t):
    """float64 log softmax(x)[t] per row, with the header's special rules."""
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty(rows.shape[0])
    for r, (row, tg) in enumerate(zip(rows, np.asarray(t).reshape(-1))):
        if tg < 0 or np.isnan(row).any():
            out[r] = np.nan
        elif np.isposinf(row).any():
            out[r] = -math.log(np.isposinf(row).sum()) if np.isposinf(row[tg]) else -np.inf
        elif np.isneginf(row).all():
            out[r] = np.nan
        else:
            m = row.max()
            out[r] = row[tg] - m - math.log(np.exp(row - m).sum())
    return out.reshape(x.shape[:-1])


def logprob_tol(x, ref):
    """exp of (x - max) in float32 (argument rounding u |x - m|, 1-ulp exp),
    sum in double, log, subtraction, one float32 rounding."""
    rows = x.reshape(-1, x.shape[-1])
    m = rows.max(axis=1)
    spread = (m - rows.min(axis=1)).reshape(ref.shape)
    fin = np.isfinite(ref)
    return np.where(fin, 4 * U * (4 + spread + np.abs(m.reshape(ref.shape))) + half_ulp(ref, "f32"), 0)


class TestRecipe(Case):
    def test_merge_weights(self):
        rng = np.random.default_rng(8)
        for isa, ctx in self.each_ctx():
            for dts in (("f32", "f32"), ("bf16", "bf16"), ("f16", "bf16", "f32")):
                for odt in DTYPES:
                    with self.subTest(inputs=dts, out=odt):
                        xs = [rand(rng, (3, 17, 5), dt, -4, 4) for dt in dts]
                        cf = rng.uniform(-1, 1, len(xs))
                        out = ctx.merge_weights(xs, cf, dtype=odt)
                        terms = [c * decode(x) for c, x in zip(cf, xs)]
                        ref = sum(terms)
                        err = (len(xs) + 2) * U * sum(np.abs(t) for t in terms)
                        self.assertClose(out, ref, out_tol(ref, err, odt), "merge_weights " + odt)
            # LongRecipe's 0.5/0.5 average of two bf16 models is the correctly rounded average
            a, b = rand(rng, (64,), "bf16"), rand(rng, (64,), "bf16")
            self.assertClose(ctx.merge_weights([a, b], [0.5, 0.5]), round_to((decode(a) + decode(b)) / 2, "bf16"),
                             0.0, "average")
            # in place into a strided view (task arithmetic base + l (w - base))
            buf = rand(rng, (4, 10), "f32")
            base = buf[:, 1:8]
            w = rand(rng, (4, 7), "f32")
            ref = decode(base) * 0.75 + decode(w) * 0.25
            before = buf.copy()
            r = ctx.merge_weights([base, w], [0.75, 0.25], out=base)
            self.assertIs(r, base)
            self.assertClose(base, ref, out_tol(ref, 4 * U * np.abs(ref) + 4 * U, "f32"), "in place")
            self.assertTrue(np.array_equal(buf[:, [0, 8, 9]], before[:, [0, 8, 9]]))
            e = self.assertLcxError(lcx.E_INVALID, ctx.merge_weights, [a, b[:10]], [0.5, 0.5])
            self.assertIn("shape", e.message)
            self.assertRaises(ValueError, ctx.merge_weights, [a, b], [0.5])

    def test_token_logprobs(self):
        rng = np.random.default_rng(9)
        for isa, ctx in self.each_ctx():
            for dt in DTYPES:
                with self.subTest(dt=dt):
                    x = rand(rng, (2, 3, 300), dt, -8, 8)
                    t = rng.integers(0, 300, (2, 3))
                    got = ctx.token_logprobs(x, t)
                    self.assertEqual(got.shape, (2, 3))
                    xr = decode(x)
                    ref = logprob_ref(xr, t)
                    self.assertClose(got, ref, logprob_tol(xr, ref), "logprobs")
            # special rows: NaN, +inf (shared mass), all -inf, negative target
            x = np.zeros((5, 6), np.float32)
            x[0, 2] = np.nan
            x[1, [1, 4]] = np.inf
            x[2, [1, 4]] = np.inf
            x[3, :] = -np.inf
            t = np.array([0, 4, 0, 1, -100])
            got = ctx.token_logprobs(x, t)
            self.assertClose(got, logprob_ref(x.astype(np.float64), t), half_ulp(math.log(2), "f32"), "specials")
            self.assertTrue(np.isnan(got[[0, 3, 4]]).all())
            self.assertEqual(got[2], -np.inf)
            e = self.assertLcxError(lcx.E_INVALID, ctx.token_logprobs, x, [0, 4, 0, 1, 6])    # target >= vocab
            self.assertIn("6", e.message)
            self.assertLcxError(lcx.E_INVALID, ctx.token_logprobs, np.zeros(5, np.float32), [0])   # 1-D
            self.assertRaises(ValueError, ctx.token_logprobs, x, [0, 1])

    def test_token_impact(self):
        rng = np.random.default_rng(10)
        for isa, ctx in self.each_ctx():
            base = rand(rng, (4, 50), "bf16", -5, 5)
            ext = rand(rng, (4, 50), "f32", -5, 5)
            t = rng.integers(0, 50, 4)
            got = ctx.token_impact(base, ext, t)
            rb, re = logprob_ref(decode(base), t), logprob_ref(decode(ext), t)
            ref = re - rb
            tol = logprob_tol(decode(base), rb) + logprob_tol(decode(ext), re) + half_ulp(ref, "f32")
            self.assertClose(got, ref, tol, "impact")
            self.assertLcxError(lcx.E_INVALID, ctx.token_impact, base, ext[:3], t)

    def test_impact_topk(self):
        rng = np.random.default_rng(11)
        n, vocab = 400, 40
        scores = rng.standard_normal(n).astype(np.float32)
        ids = rng.integers(-2, vocab, n)
        scores[5] = np.nan
        ids[7], ids[8], scores[7], scores[8] = 3, 3, np.inf, -np.inf      # id 3 has no mean
        ids[9], scores[9] = 11, np.inf                                     # id 11: mean +inf
        ids[ids == 12] = 13
        for use_abs in (False, True):
            for k in (1, 5, 100):
                top, means = lcx.impact_topk(scores, ids, vocab, k, use_abs=use_abs)
                ref = []
                for i in range(vocab):
                    sel = (ids == i) & ~np.isnan(scores)
                    v = scores[sel].astype(np.float64)
                    if use_abs:
                        v = np.abs(v)
                    if v.size == 0 or (np.isposinf(v).any() and np.isneginf(v).any()):
                        continue
                    ref.append((-v.mean(), i))
                ref.sort()
                ref = ref[:k]
                self.assertEqual(top.tolist(), [i for _, i in ref])
                self.assertClose(means, [-m for m, _ in ref], 1e-12 * np.abs([m for m, _ in ref]), "means")
        self.assertNotIn(3, lcx.impact_topk(scores, ids, vocab, 100)[0].tolist())
        self.assertEqual(lcx.impact_topk(scores, ids, vocab, 1)[0].tolist(), [11])
        e = self.assertLcxError(lcx.E_INVALID, lcx.impact_topk, scores, ids, 20, 5)        # id >= vocab
        self.assertIn("vocab", e.message)

    def test_longrope_yarn_factors(self):
        for d, base, L0, s, bf, bs in ((128, 1e4, 4096, 8.0, 32, 1), (64, 5e5, 8192, 16.0, 128, 2),
                                       (16, 1e4, 64, 1.0, 32, 1)):
            f = lcx.longrope_yarn_factors(d, base, L0, s, bf, bs)

            def c(r):
                return d * math.log(L0 / (2 * math.pi * r)) / (2 * math.log(base))
            lo, hi = max(math.floor(c(bf)), 0), min(math.ceil(c(bs)), d - 1)
            if lo == hi:
                hi += 0.001
            i = np.arange(d // 2)
            m = 1 - np.clip((i - lo) / (hi - lo), 0, 1)
            self.assertClose(f, s * (1 - m) + m, 1e-14 * s, "yarn factors")
        f = lcx.longrope_yarn_factors(128, 1e4, 4096, 8.0, 32, 1)   # the spec's example
        self.assertTrue((f[:21] == 1).all() and (f[46:] == 8).all())
        self.assertAlmostEqual(f[21], 1.269, places=3)
        self.assertLcxError(lcx.E_INVALID, lcx.longrope_yarn_factors, 7)

    def test_longrope_search(self):
        target = np.linspace(1.0, 5.0, 8)
        seen = []

        def score(f, n_hat):
            return float(((f - target) ** 2).sum()) + 0.01 * n_hat

        def fitness(f, n_hat):
            seen.append((f.copy(), n_hat))
            return score(f, n_hat)

        prog = []
        kw = dict(rotary_dim=16, scale=4.0, population=12, iterations=6, mutations=4, crossovers=4, parents=6,
                  seed=7, base=1e4, original_max_position=64)
        best, n_hat, fit = lcx.longrope_search(fitness, progress=lambda it, b: prog.append((it, b)),
                                               n_hat_candidates=[0, 2, 4], **kw)
        self.assertEqual(best.shape, (8,))
        self.assertTrue((np.diff(best) >= 0).all() and best[0] >= 1 and best[-1] <= 1 + 4.0 + 1e-12)
        self.assertIn(n_hat, (0, 2, 4))
        self.assertAlmostEqual(fit, score(best, n_hat), places=12)
        self.assertAlmostEqual(fit, min(score(f, h) for f, h in seen), places=12)
        init = lcx.longrope_yarn_factors(16, 1e4, 64, 4.0, 32, 1)
        self.assertTrue(np.allclose(seen[0][0], np.minimum(init, 5.0)))
        self.assertEqual(len(prog), 6)
        self.assertTrue(all(b2 <= b1 for (_, b1), (_, b2) in zip(prog, prog[1:])))
        self.assertAlmostEqual(prog[-1][1], fit, places=12)
        for i in range(len(seen)):      # no individual evaluated twice
            for j in range(i):
                self.assertFalse(np.allclose(seen[i][0], seen[j][0], rtol=1e-5, atol=0) and
                                 seen[i][1] == seen[j][1])
        again = lcx.longrope_search(fitness, n_hat_candidates=[0, 2, 4], **kw)
        self.assertTrue(np.array_equal(again[0], best) and again[1:] == (n_hat, fit))
        # explicit initial factors
        best2, _, _ = lcx.longrope_search(fitness, initial_factors=np.full(8, 2.0), **kw)
        self.assertTrue((np.diff(best2) >= 0).all())

        class Stop(Exception):
            pass

        def bad(f, n_hat):
            raise Stop("no model")
        e = self.assertLcxError(lcx.E_CALLBACK, lcx.longrope_search, bad, **kw)
        self.assertIsInstance(e.__cause__, Stop)
        self.assertLcxError(lcx.E_INVALID, lcx.longrope_search, fitness, **dict(kw, rotary_dim=15))
        self.assertRaises(TypeError, lcx.longrope_search, fitness, colour=3)


# ---------------------------------------------------------------------------
# attention and S2-Attn
# ---------------------------------------------------------------------------


def attn_rows(q, k, v, scale, vis, softcap=0.0):
    """One head: q [sq][d], k [sk][d], v [sk][dv], vis [sq][sk] boolean.
    Returns (out, lse, tol_out, tol_lse) from the error model: scores to
    (d + 6) u scale |q||k|, exp of (s - m) to u |s - m| + 2u, f32 sums of sk
    terms; out moves by at most 4 eps max|v| when every weight moves by eps."""
    s = scale * q @ k.T
    sabs = scale * np.abs(q) @ np.abs(k).T
    if softcap:
        s = softcap * np.tanh(s / softcap)
    sq, sk = s.shape
    out = np.zeros((sq, v.shape[1]))
    lse = np.full(sq, -np.inf)
    tol_o = np.zeros(sq)
    tol_l = np.zeros(sq)
    vmax = np.abs(v).max() if v.size else 0.0
    for i in range(sq):
        sel = vis[i]
        if not sel.any():
            continue
        si = s[i, sel]
        m = si.max()
        e = np.exp(si - m)
        l_ = e.sum()
        out[i] = e @ v[sel] / l_
        lse[i] = m + math.log(l_)
        eps = ((sk // 64 + 2) * 2 + 4) * U + ((k.shape[1] + 6) * U * sabs[i, sel] + U * np.abs(si - m)).max()
        tol_o[i] = 2 * (4 * eps + (sk + 4) * U) * vmax
        tol_l[i] = 2 * (eps + (sk + 4) * U) + 4 * U * abs(lse[i])
    return out, lse, tol_o, tol_l


def attention_ref(q, k, v, scale=0.0, causal=False, window=-1, softcap=0.0, cu_q=None, cu_k=None):
    q, k, v = decode(q), decode(k), decode(v)
    B, Sq, H, D = q.shape
    Hkv = k.shape[2]
    scale = scale or 1 / math.sqrt(D)
    out = np.zeros(q.shape[:3] + (v.shape[3],))
    lse = np.zeros((B, H, Sq))
    to = np.zeros((B, Sq, H))
    tl = np.zeros((B, H, Sq))
    seqs = [(b, 0, Sq, 0, k.shape[1]) for b in range(B)] if cu_q is None else \
        [(0, cu_q[i], cu_q[i + 1], cu_k[i], cu_k[i + 1]) for i in range(len(cu_q) - 1)]
    for b, q0, q1, k0, k1 in seqs:
        lq, lk = q1 - q0, k1 - k0
        i = np.arange(lq)[:, None]
        j = np.arange(lk)[None, :]
        vis = np.ones((lq, lk), bool)
        if causal:
            vis &= j <= lk - lq + i
            if window >= 0:
                vis &= j >= lk - lq + i - window
        for h in range(H):
            kv = h // (H // Hkv)
            o, ls, a, c = attn_rows(q[b, q0:q1, h], k[b, k0:k1, kv], v[b, k0:k1, kv], scale, vis, softcap)
            out[b, q0:q1, h], lse[b, h, q0:q1], to[b, q0:q1, h], tl[b, h, q0:q1] = o, ls, a, c
    return out, lse, to[..., None], tl


def s2_ref(q, k, v, g, mode, h0=-1, shift=1, scale=0.0):
    """The literal LongLoRA forms: ROLL = roll shifted heads by fwd, causal
    attention in groups of g, roll back by back; SEGMENTS / RAGGED = causal
    attention inside the documented segments."""
    q, k, v = decode(q), decode(k), decode(v)
    B, N, H, D = q.shape
    Hkv = k.shape[2]
    scale = scale or 1 / math.sqrt(D)
    h0 = H // 2 if h0 < 0 else h0
    out = np.zeros(q.shape[:3] + (v.shape[3],))
    lse = np.zeros((B, H, N))
    to = np.zeros((B, N, H))
    tl = np.zeros((B, H, N))
    fwd = -((g + 1) // 2) if shift > 0 else (g + 1) // 2
    back = g // 2 if shift > 0 else -(g // 2)
    for b in range(B):
        for h in range(H):
            kv = h // (H // Hkv)
            qq, kk, vv = q[b, :, h], k[b, :, kv], v[b, :, kv]
            shifted = h >= h0
            if shifted and mode == "roll":
                qq, kk, vv = (np.roll(x, fwd, axis=0) for x in (qq, kk, vv))
            if shifted and mode != "roll":
                starts = [0] + list(range(g // 2, N, g))
            else:
                starts = list(range(0, N, g))
            seg = np.searchsorted(np.array(starts), np.arange(N), side="right")
            i = np.arange(N)
            vis = (seg[:, None] == seg[None, :]) & (i[None, :] <= i[:, None])
            o, ls, a, c = attn_rows(qq, kk, vv, scale, vis)
            if shifted and mode == "roll":
                o, ls, a, c = (np.roll(x, back, axis=0) for x in (o, ls, a, c))
            out[b, :, h], lse[b, h], to[b, :, h], tl[b, h] = o, ls, a, c
    return out, lse, to[..., None], tl


class TestAttention(Case):
    def check(self, got, lse, ref, dt):
        out_r, lse_r, to, tl = ref
        self.assertClose(got, out_r, out_tol(out_r, to, dt), "attention out " + dt)
        if lse is not None:
            self.assertClose(lse, lse_r, tl, "attention lse")

    def test_forward(self):
        rng = np.random.default_rng(12)
        cases = [  # B, Sq, Sk, H, Hkv, D, Dv, kwargs
            (2, 9, 9, 2, 2, 16, 16, {}),
            (1, 7, 70, 4, 2, 32, 24, dict(causal=True)),
            (2, 20, 20, 4, 1, 16, 16, dict(causal=True, window_left=5)),
            (1, 10, 33, 2, 1, 8, 8, dict(softcap=2.0, scale=0.7)),
            (1, 12, 5, 2, 2, 8, 8, dict(causal=True)),                # early rows see nothing
            (1, 1, 1100, 4, 2, 16, 16, {}),                           # decode: split keys
            (1, 30, 30, 4, 2, 64, 64, dict(causal=True, pv_16bit=True)),  # FlashAttention numerics allowed
        ]
        for isa, ctx in self.each_ctx():
            for B, Sq, Sk, H, Hkv, D, Dv, kw in cases:
                for dts in (("f32", "f32", "f32", "f32"), ("bf16", "bf16", "bf16", "bf16"),
                            ("f16", "bf16", "f32", "f16")):
                    with self.subTest(shape=(B, Sq, Sk, H, Hkv, D, Dv), kw=kw, dts=dts):
                        q = rand(rng, (B, Sq, H, D), dts[0], -1.5, 1.5)
                        k = rand(rng, (B, Sk, Hkv, D), dts[1], -1.5, 1.5)
                        v = rand(rng, (B, Sk, Hkv, Dv), dts[2])
                        out, lse = ctx.attention_forward(q, k, v, dtype=dts[3], return_lse=True, **kw)
                        self.assertEqual((out.dtype, out.shape, lse.shape), (np.dtype(NP[dts[3]]),
                                                                             (B, Sq, H, Dv), (B, H, Sq)))
                        ref = attention_ref(q, k, v, kw.get("scale", 0.0), kw.get("causal", False),
                                            kw.get("window_left", -1), kw.get("softcap", 0.0))
                        self.check(out, lse, ref, dts[3])
            # strided views (heads of a fused QKV buffer) without lse
            qkv = rand(rng, (2, 11, 3, 4, 16), "f32")
            q, k, v = qkv[:, :, 0], qkv[:, :, 1, :2], qkv[:, :, 2, :2]
            out = ctx.attention_forward(q, k, v, causal=True)
            self.check(out, None, attention_ref(q, k, v, causal=True), "f32")

    def test_varlen(self):
        rng = np.random.default_rng(13)
        cu_q, cu_k = [0, 3, 3, 10], [0, 5, 8, 15]
        for isa, ctx in self.each_ctx():
            q = rand(rng, (1, 10, 2, 16), "f32")
            k = rand(rng, (1, 15, 1, 16), "bf16")
            v = rand(rng, (1, 15, 1, 8), "f32")
            out, lse = ctx.attention_forward(q, k, v, causal=True, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k,
                                             return_lse=True)
            self.check(out, lse, attention_ref(q, k, v, causal=True, cu_q=cu_q, cu_k=cu_k), "f32")

    def test_merge(self):
        rng = np.random.default_rng(14)
        for isa, ctx in self.each_ctx():
            q = rand(rng, (2, 6, 4, 16), "f32")
            k = rand(rng, (2, 40, 2, 16), "f32")
            v = rand(rng, (2, 40, 2, 16), "f32")
            oa, la = ctx.attention_forward(q, k[:, :25], v[:, :25], return_lse=True)
            ob, lb = ctx.attention_forward(q, k[:, 25:], v[:, 25:], return_lse=True)
            lb[0, 1, 2] = -np.inf          # a row whose second part saw nothing
            la[1, 0, 0] = lb[1, 0, 0] = -np.inf
            for odt in DTYPES:
                out, lse = ctx.attention_merge(oa, la, ob, lb, dtype=odt)
                A, Bv = decode(oa), decode(ob)
                la_t, lb_t = la.transpose(0, 2, 1)[..., None], lb.transpose(0, 2, 1)[..., None]
                m = np.maximum(la_t, lb_t)
                with np.errstate(invalid="ignore", divide="ignore"):
                    wa = np.where(np.isneginf(la_t), 0, np.exp(la_t - m))
                    wb = np.where(np.isneginf(lb_t), 0, np.exp(lb_t - m))
                    ref = np.nan_to_num((wa * A + wb * Bv) / (wa + wb))
                    lse_r = (m + np.log(wa + wb))[..., 0].transpose(0, 2, 1)
                    eps = U * np.abs(la_t - lb_t) + 4 * U
                eps = np.where(np.isfinite(eps), eps, 4 * U)
                tol = 2 * (4 * eps + 4 * U) * np.maximum(np.abs(A).max(), np.abs(Bv).max())
                self.assertClose(out, ref, out_tol(ref, tol, odt), "attention merge " + odt)
                self.assertClose(lse, lse_r, 8 * U * (1 + np.abs(np.nan_to_num(lse_r, neginf=0))),
                                 "attention merge lse")
            # merging the halves equals attention over all keys
            full_o, full_l = ctx.attention_forward(q, k, v, return_lse=True)
            oa2, la2 = ctx.attention_forward(q, k[:, :25], v[:, :25], return_lse=True)
            ob2, lb2 = ctx.attention_forward(q, k[:, 25:], v[:, 25:], return_lse=True)
            r, rl = ctx.attention_merge(oa2, la2, ob2, lb2, out=oa2, lse=la2)   # in place
            self.assertIs(r, oa2)
            self.assertIs(rl, la2)
            self.assertClose(r, decode(full_o), 1e-5, "split == full")
            self.assertClose(rl, full_l.astype(np.float64), 1e-5, "split lse == full")
            self.assertLcxError(lcx.E_INVALID, ctx.attention_merge, oa, la, ob[:, :5], lb)
            self.assertRaises(ValueError, ctx.attention_merge, oa, la[:1], ob, lb)

    def test_forward_errors(self):
        for isa, ctx in self.each_ctx():
            q = np.zeros((1, 4, 3, 8), np.float32)
            kv = np.zeros((1, 4, 2, 8), np.float32)
            e = self.assertLcxError(lcx.E_INVALID, ctx.attention_forward, q, kv, kv)   # 3 heads over 2 kv heads
            self.assertIn("heads", e.message)
            self.assertLcxError(lcx.E_INVALID, ctx.attention_forward, q, kv[:, :, :1], kv[:, :, :1],
                                window_left=2)                                            # window needs causal
            self.assertRaises(ValueError, ctx.attention_forward, q, kv, kv, cu_seqlens_q=[0, 4])
            self.assertRaises(ValueError, ctx.attention_forward, q, kv, kv, lse=np.zeros(3, np.float32))

    def test_s2(self):
        rng = np.random.default_rng(15)
        cases = [  # B, N, H, Hkv, D, g, mode, extra
            (1, 16, 4, 4, 8, 4, "roll", {}),
            (2, 16, 4, 2, 8, 8, "segments", {}),
            (1, 19, 4, 2, 8, 6, "ragged", {}),
            (1, 12, 3, 1, 8, 4, "roll", dict(shift=-1)),
            (1, 12, 4, 2, 8, 4, "segments", dict(shifted_head_start=1, scale=0.5)),
            (1, 15, 2, 2, 8, 3, "roll", dict(exact_odd_group=True)),       # LongLoRA's odd-g off-by-one
            (1, 24, 2, 1, 8, None, "segments", {}),                         # default g = seq / 4
        ]
        for isa, ctx in self.each_ctx():
            for B, N, H, Hkv, D, g, mode, extra in cases:
                for dt in ("f32", "bf16"):
                    with self.subTest(shape=(B, N, H, Hkv, D, g), mode=mode, extra=extra, dt=dt):
                        q = rand(rng, (B, N, H, D), dt, -1.5, 1.5)
                        k = rand(rng, (B, N, Hkv, D), dt, -1.5, 1.5)
                        v = rand(rng, (B, N, Hkv, D), dt)
                        out, lse = ctx.attention_s2_forward(q, k, v, g, mode=mode, return_lse=True, **extra)
                        ref = s2_ref(q, k, v, g or N // 4, mode, extra.get("shifted_head_start", -1),
                                     extra.get("shift", 1), extra.get("scale", 0.0))
                        self.check(out, lse, ref, dt)
            q = np.zeros((1, 12, 2, 8), np.float32)
            e = self.assertLcxError(lcx.E_INVALID, ctx.attention_s2_forward, q, q, q, 3)   # odd g refused
            self.assertIn("odd", e.message)
            self.assertLcxError(lcx.E_INVALID, ctx.attention_s2_forward, q, q, q, 8)       # 12 % 8, SEGMENTS
            self.assertRaises(ValueError, ctx.attention_s2_forward, q, q, q, 4, mode="diagonal")

    def test_s2_segments(self):
        for mode in ("roll", "segments", "ragged"):
            for N, g in ((16, 4), (24, 8), (8, 8)):
                self.assertEqual(lcx.s2_segments(mode, N, g, 0).tolist(), [[s, s + g] for s in range(0, N, g)])
        self.assertEqual(lcx.s2_segments("segments", 16, 4, 1).tolist(), [[0, 2], [2, 6], [6, 10], [10, 14],
                                                                          [14, 16]])
        self.assertEqual(lcx.s2_segments("roll", 16, 4, 1).tolist(), [[2, 6], [6, 10], [10, 14], [14, 2]])
        self.assertEqual(lcx.s2_segments("ragged", 19, 6, 1).tolist(), [[0, 3], [3, 9], [9, 15], [15, 19]])
        self.assertEqual(lcx.s2_segments("ragged", 19, 6, 0).tolist(), [[0, 6], [6, 12], [12, 18], [18, 19]])
        self.assertEqual(lcx.s2_segments(lcx.S2_MODES["ragged"], 3, 8 // 4, 0).tolist(), [[0, 2], [2, 3]])
        self.assertEqual([lcx.s2_default_group_size(n) for n in (3, 4, 8192, 10)], [0, 1, 2048, 2])
        e = self.assertLcxError(lcx.E_INVALID, lcx.s2_segments, "segments", 18, 4, 1)
        self.assertIn("multiple", e.message)

    @staticmethod
    def covered(seg, n):
        """Token -> number of segments holding it (a wrap pair (s, e), s > e, holds [s, n) and [0, e))."""
        cnt = np.zeros(n, int)
        for s0, e0 in seg:
            idx = np.r_[s0:n, 0:e0] if s0 > e0 else np.r_[s0:e0]
            cnt[idx] += 1
        return cnt

    def test_s2_segments_partition(self):
        for mode, n, g in (("roll", 16, 4), ("roll", 24, 6), ("segments", 15, 3), ("segments", 12, 4),
                           ("ragged", 19, 6), ("ragged", 17, 5)):
            for shifted in (0, 1):
                with self.subTest(mode=mode, n=n, g=g, shifted=shifted):
                    self.assertTrue((self.covered(lcx.s2_segments(mode, n, g, shifted), n) == 1).all())

    def test_s2_segments_roll_odd_group(self):
        """ROLL with odd g: the forward's groups are LongLoRA's roll by
        -ceil(g/2), {2,3,4}, ..., {11,12,13}, {14,0,1} for seq 15, g 3; the
        segments partition the sequence like them."""
        seg = lcx.s2_segments("roll", 15, 3, 1)
        self.assertTrue((self.covered(seg, 15) == 1).all(), seg.tolist())
        self.assertEqual(seg.tolist(), [[2, 5], [5, 8], [8, 11], [11, 14], [14, 2]])


# ---------------------------------------------------------------------------
# LoRA
# ---------------------------------------------------------------------------


def lora_ref(x, w, bias, a, b, s, y0=None):
    """(y, error bound before the output rounding) in float64."""
    x = decode(x)
    y = np.zeros((x.shape[0], (w if w is not None else b if b is not None else bias).shape[0]))
    mag = np.zeros_like(y)
    n = 4
    if w is not None:
        W = decode(w)
        y += x @ W.T
        mag += np.abs(x) @ np.abs(W).T
        n += x.shape[1]
    if bias is not None:
        y += decode(bias)
        mag += np.abs(decode(bias))
    if a is not None:
        A, Bm = decode(a), decode(b)
        y += s * (x @ A.T) @ Bm.T
        mag += abs(s) * (np.abs(x) @ np.abs(A).T) @ np.abs(Bm).T
        n += x.shape[1] + A.shape[0]
    if y0 is not None:
        y += decode(y0)
        mag += np.abs(decode(y0))
    return y, 2 * n * U * mag


class TestLora(Case):
    def test_linear(self):
        rng = np.random.default_rng(16)
        T, IN, OUT, R = 9, 24, 20, 4
        for isa, ctx in self.each_ctx():
            for dts in (("f32", "f32", "f32"), ("bf16", "bf16", "bf16"), ("f16", "bf16", "f32")):
                x = rand(rng, (T, IN), dts[0])
                w = rand(rng, (OUT, IN), dts[1])
                bias = rand(rng, (OUT,), dts[2])
                a = rand(rng, (R, IN), dts[1])
                b = rand(rng, (OUT, R), dts[2])
                for combo in ("full", "base", "delta", "delta+bias", "bias only"):
                    with self.subTest(dts=dts, combo=combo):
                        args = dict(full=(w, bias, a, b), base=(w, None, None, None), delta=(None, None, a, b),
                                    **{"delta+bias": (None, bias, a, b), "bias only": (None, bias, None, None)})[combo]
                        y = ctx.lora_linear(x, *args, scale=2.0, dtype=dts[0])
                        ref, err = lora_ref(x, *args, 2.0)
                        self.assertClose(y, ref, out_tol(ref, err, dts[0]), "lora %s %s" % (combo, dts[0]))
                # accumulate into a strided view of a wider output
                buf = rand(rng, (T, OUT + 6), dts[0])
                y = buf[:, 3:3 + OUT]
                y0 = y.copy()
                r = ctx.lora_linear(x, w, bias, a, b, scale=-0.5, y=y, accumulate=True)
                self.assertIs(r, y)
                ref, err = lora_ref(x, w, bias, a, b, -0.5, y0)
                self.assertClose(y, ref, out_tol(ref, err, dts[0]), "lora accumulate " + dts[0])
            x = np.zeros((3, 8), np.float32)
            e = self.assertLcxError(lcx.E_INVALID, ctx.lora_linear, x, np.zeros((4, 7), np.float32))
            self.assertIn("w", e.message)
            self.assertLcxError(lcx.E_INVALID, ctx.lora_linear, x, np.zeros((4, 8), np.float32),
                                a=np.zeros((2, 8), np.float32))           # only one of a / b
            self.assertLcxError(lcx.E_INVALID, ctx.lora_linear, x, a=np.zeros((2, 8), np.float32),
                                b=np.zeros((4, 2), np.float32), scale=float("inf"))
            self.assertRaises(ValueError, ctx.lora_linear, x)

    def test_batched(self):
        rng = np.random.default_rng(17)
        T, IN, OUT = 13, 16, 12
        for isa, ctx in self.each_ctx():
            for dt in ("f32", "bf16"):
                x = rand(rng, (T, IN), dt)
                ads = [(rand(rng, (r, IN), dt), rand(rng, (OUT, r), "f32"), s)
                       for r, s in ((2, 1.5), (4, -0.25), (1, 3.0))]
                idx = rng.integers(-1, 3, T).astype(np.int32)
                y = rand(rng, (T, OUT), dt)
                y0 = y.copy()
                ctx.lora_batched(x, ads, idx, y)
                ref = decode(y0).copy()
                err = np.zeros_like(ref)
                for t in range(T):
                    if idx[t] >= 0:
                        a, b, s = ads[idx[t]]
                        r1, e1 = lora_ref(x[t:t + 1], None, None, a, b, s, y0[t:t + 1])
                        ref[t], err[t] = r1[0], e1[0]
                self.assertClose(y, ref, out_tol(ref, err, dt), "lora batched " + dt)
                self.assertTrue(np.array_equal(y[idx < 0], y0[idx < 0]), "rows without adapter changed")
            y = np.zeros((T, OUT), np.float32)
            e = self.assertLcxError(lcx.E_INVALID, ctx.lora_batched, x, ads, np.full(T, 3, np.int32), y)
            self.assertIn("adapter", e.message)
            self.assertRaises(ValueError, ctx.lora_batched, x, ads, np.zeros(T - 1, np.int32), y)

    def test_merge(self):
        rng = np.random.default_rng(18)
        for isa, ctx in self.each_ctx():
            for dt in DTYPES:
                with self.subTest(dt=dt):
                    w = rand(rng, (10, 14), dt)
                    w0 = w.copy()
                    a, b = rand(rng, (3, 14), "f32"), rand(rng, (10, 3), dt)
                    ctx.lora_merge(w, a, b, 2.0)
                    W0, A, B_ = decode(w0), decode(a), decode(b)
                    ref = W0 + 2.0 * B_ @ A
                    err = 2 * (3 + 3) * U * (np.abs(W0) + 2.0 * np.abs(B_) @ np.abs(A))
                    self.assertClose(w, ref, out_tol(ref, err, dt), "lora merge " + dt)
                    ctx.lora_merge(w, a, b, -2.0)                       # unmerge restores W within the roundings
                    self.assertClose(w, W0, 2 * out_tol(ref, err, dt) + half_ulp(W0, dt) + err, "lora unmerge " + dt)
            e = self.assertLcxError(lcx.E_INVALID, ctx.lora_merge, np.zeros((10, 14), np.float32),
                                    np.zeros((3, 14), np.float32), np.zeros((10, 2), np.float32), 1.0)
            self.assertIn("rank", e.message)
            self.assertRaises(ValueError, ctx.lora_merge, np.zeros((10, 28), np.float32)[:, ::2],
                              np.zeros((3, 14), np.float32), np.zeros((10, 3), np.float32), 1.0)


# ---------------------------------------------------------------------------
# binding mechanics: no copies, caller parallel_for
# ---------------------------------------------------------------------------


class TestBinding(Case):
    def test_zero_copy_views(self):
        ctx = CTX[ISAS[-1]]
        big = np.zeros((4, 64), np.float32)
        view = big[1:3, 8:40]
        t, arr = lcx._tensor(view, "v", writable=True)
        self.assertIs(arr, view)
        self.assertEqual(t.data, big.ctypes.data + (64 + 8) * 4)
        src = np.arange(64, dtype=np.float32).reshape(2, 32)
        ctx.convert(src, out=view)
        self.assertTrue(np.array_equal(big[1:3, 8:40], src))
        self.assertEqual(np.count_nonzero(big), 63)

    def test_parallel_for(self):
        rng = np.random.default_rng(19)
        q = rand(rng, (1, 300, 4, 32), "f32")
        k = rand(rng, (1, 300, 2, 32), "f32")
        v = rand(rng, (1, 300, 2, 32), "f32")
        calls = []

        def serial(n, task):
            calls.append(n)
            for i in range(n):
                task(i)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            def threaded(n, task):
                list(pool.map(task, range(n)))

            with lcx.Context(threads=1) as c1, lcx.Context(threads=4, parallel_for=serial) as cs, \
                    lcx.Context(threads=4, parallel_for=threaded) as ct:
                ref = c1.attention_forward(q, k, v, causal=True)
                self.assertTrue(np.array_equal(cs.attention_forward(q, k, v, causal=True), ref))
                self.assertTrue(calls and max(calls) > 1)
                self.assertTrue(np.array_equal(ct.attention_forward(q, k, v, causal=True), ref))

        def broken(n, task):
            raise RuntimeError("pool is gone")

        with lcx.Context(threads=2, parallel_for=broken) as cb:
            e = self.assertLcxError(lcx.E_CALLBACK, cb.attention_forward, q, k, v)
            self.assertIsInstance(e.__cause__, RuntimeError)

    def test_empty_arrays(self):
        ctx = CTX[ISAS[0]]
        self.assertEqual(ctx.convert(np.zeros((0, 3), np.float32), "bf16").shape, (0, 3))
        out, lse = ctx.attention_forward(np.zeros((1, 0, 2, 8), np.float32), np.zeros((1, 4, 2, 8), np.float32),
                                         np.zeros((1, 4, 2, 8), np.float32), return_lse=True)
        self.assertEqual((out.shape, lse.shape), ((1, 0, 2, 8), (1, 2, 0)))
        self.assertEqual(ctx.lora_linear(np.zeros((0, 4), np.float16), np.zeros((3, 4), np.float16)).shape, (0, 3))
        self.assertEqual(ctx.token_logprobs(np.zeros((0, 5), np.float32), []).shape, (0,))

    def test_wrapped_lists(self):
        self.assertFalse(set(lcx.WRAPPED) & set(lcx.NOT_WRAPPED))
        for sym in lcx.WRAPPED:
            self.assertIn(sym, lcx._PROTOTYPES)
            self.assertNotIsInstance(getattr(lcx._c, sym), lcx._Missing, sym)
        for sym, why in lcx.NOT_WRAPPED.items():
            self.assertTrue(why)


if __name__ == "__main__":
    unittest.main(verbosity=1)
