# prep.py SRC.cu DST.cc: the emulation copy of a kernels/cuda source (launches,
# inline PTX, shared memory and device math rewritten for inc/cuda_runtime.h)
import re, sys
src, dst = sys.argv[1], sys.argv[2]
s = open(src).read()
# kernel launches -> emulated (deferred) launches
def split_top(t):
    depth, cur, out = 0, '', []
    for ch in t:
        if ch in '([{': depth += 1
        if ch in ')]}': depth -= 1
        if ch == ',' and depth == 0:
            out.append(cur.strip()); cur = ''
        else:
            cur += ch
    if cur.strip(): out.append(cur.strip())
    return out
def launch(m):
    k, cfg, args = m.group(1), m.group(2), m.group(3)
    parts = split_top(cfg)
    assert len(parts) == 4, cfg
    al = split_top(args)
    # arguments are evaluated (and copied) at the launch, as in CUDA
    decl = ' '.join('auto emu_a%d = (%s);' % (i, x) for i, x in enumerate(al))
    call = ', '.join('emu_a%d' % i for i in range(len(al)))
    return '{ %s emu_launch((const void *)&%s, "%s", dim3(%s), dim3(%s), (size_t)(%s), [=]() { %s(%s); }); }' % (
        decl, k, k, parts[0], parts[1], parts[2], k, call)
s, n = re.subn(r'([A-Za-z_][\w:]*(?:<[^<>;]*>)?)<<<([^;]*?)>>>\(([^;]*?)\);', launch, s, flags=re.S)
print(src, 'launches:', n, file=sys.stderr)
s = s.replace('#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800\n#define LCX_CUDA_SM80 1', '#if LCX_EMU_SM80\n#define LCX_CUDA_SM80 1')
s = s.replace('#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)\n#define LCX_CUDA_SM90A 1', '#if LCX_EMU_SM90A\n#define LCX_CUDA_SM90A 1')
def asm(m):
    t = m.group(0)
    if re.match(r'asm volatile\(""', t): return ';'
    if 'fence.proxy.async' in t: return 'emu_fence_proxy();'
    if 'wgmma.fence' in t: return 'emu_wg_arrive();'
    if 'wgmma.commit_group' in t: return 'emu_wg_commit();'
    if 'wgmma.wait_group' in t: return 'emu_wg_wait(n);'
    if 'wgmma.mma_async' in t and re.search(r'\}, \{%\d+, %\d+, %\d+, %\d+\}, %\d+, p,', t):
        # A from registers (a[4]): the immediates scale-a, scale-b, trans-b
        n = int(re.search(r'm64n(\d+)k16', t).group(1))
        imm = re.search(r'\}, %\d+, p, (-?\d+), (-?\d+), (\d+);', t)
        sd = re.search(r'setp\.ne\.b32 p, %(\d+), 0', t)
        ins = re.findall(r'"r"\(([^)]*)\)', t)
        assert imm and sd and len(ins) == 5 and ins[:4] == ['a[0]', 'a[1]', 'a[2]', 'a[3]'], t
        return 'emu_wgmma_rs(d, a, db, %s, %d, (%s), %s, %s, %s);' % (
            'true' if '.bf16.bf16' in t else 'false', n, ins[4], imm.group(1), imm.group(2), imm.group(3))
    if 'wgmma.mma_async' in t:
        # shape, the immediates after the descriptors and the scale-d operand
        # (the setp's source: an "r"(value) input) go to the emulation
        n = int(re.search(r'm64n(\d+)k16', t).group(1))
        imm = re.search(r'%\d+, %\d+, p, (-?\d+), (-?\d+), (\d+), (\d+);', t)
        sd = re.search(r'setp\.ne\.b32 p, %(\d+), 0', t)
        ins = re.findall(r'"r"\(([^)]*)\)', t)
        assert imm and sd and len(ins) == 1, t
        return 'emu_wgmma(d, da, db, %s, %d, (%s), %s, %s, %s, %s);' % (
            'true' if '.bf16.bf16' in t else 'false', n, ins[0], imm.group(1), imm.group(2), imm.group(3), imm.group(4))
    if 'cp.async.cg' in t: return 'emu_cp_async16(smem, gmem);'
    if 'commit_group' in t: return 'emu_commit();'
    if 'wait_group' in t: return 'emu_wait(n);'
    if 'ldmatrix' in t and '.trans' in t: return 'emu_ldsm_x4_trans(r, smem);'
    if 'ldmatrix' in t: return 'emu_ldsm_x4(r, smem);'
    if 'bf16.bf16' in t: return 'emu_mma(d, a, b, true);'
    if 'f16.f16' in t: return 'emu_mma(d, a, b, false);'
    if 'cvt.rn.bf16x2.f32' in t: return 'r = emu_pack2(lo, hi, true);'
    if 'cvt.rn.f16x2.f32' in t: return 'r = emu_pack2(lo, hi, false);'
    if 'cvt.f32.f16' in t: return 'f = emu_h2f(x, false);'
    if 'cvt.rn.f16.f32' in t: return 'r = emu_cvt_f16(x);'
    if 'ex2.approx.ftz.f32' in t: return 'r = emu_ex2(x);'
    if 'max.NaN.f32' in t: return 'r = emu_fmax_nan(x, y);'
    raise SystemExit('unknown asm: ' + t)
s, n = re.subn(r'asm(?: volatile)?\((?:[^;"]|"[^"]*")*?\);', asm, s, flags=re.S)
print(src, 'asm:', n, file=sys.stderr)
# dynamic shared memory: the launch's buffer
s, n = re.subn(r'extern __shared__ (\w+) (\w+)\[\];', r'\1 *const \2 = reinterpret_cast<\1 *>(emu_dyn_smem);', s)
print(src, 'extern shared:', n, file=sys.stderr)
# static shared memory: registered (poisoned before every block)
def shared(m):
    decl = m.group(0)
    body = re.sub(r'__align__\(\d+\)', '', m.group(1))
    depth, cur, parts = 0, '', []
    for ch in body + ',':
        if ch in '[(': depth += 1
        if ch in '])': depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur); cur = ''
        else:
            cur += ch
    names = [re.findall(r'\w+', parts[0].split('[')[0])[-1]] + [re.match(r'\s*(\w+)', p).group(1) for p in parts[1:]]
    return decl + ' ' + ' '.join('EMU_SHARED(%s);' % x for x in names)
s, n = re.subn(r'__shared__ ([^;]+);', shared, s)
print(src, 'shared:', n, file=sys.stderr)
# vector loads/stores through reinterpret_cast: alignment-checked
s, n1 = re.subn(r'\*reinterpret_cast<(\w+) \*>\(([^;]*?)\) = ([^;]*);', r'emu_st<\1>(\2, \3);', s)
s, n2 = re.subn(r'\*reinterpret_cast<const (\w+) \*>\(', r'emu_ld<\1>(', s)
print(src, 'vector st/ld:', n1, n2, file=sys.stderr)
# device math with the documented error bounds
for f in ['expf', 'logf', 'tanhf', 'sincosf', 'log']:
    s = re.sub(r'(?<![\w.])%s\(' % f, 'emu_%s(' % f, s)
open(dst, 'w').write(s)
