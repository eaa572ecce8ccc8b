// Shared by every kernel: the tier's extensions, the workgroup size (specialization
// constants 100..102, set by vk_pipe_create), the step parameter buffer (src/vk/vk_ops.h
// vk_step_params: a kernel that reads it defines PARAMS_BINDING, its binding, before the
// include), and math that must give the same bits as the CPU path.
//
// TIER (a define from shaders.list): 0 = Vulkan 1.1 core, fp32 and 32-bit storage only;
// 1 = + fp16 arithmetic, 8/16-bit storage, subgroup arithmetic; 2 = + integer dot product.
#ifndef COMMON_GLSL
#define COMMON_GLSL

#if TIER >= 1
#extension GL_EXT_shader_8bit_storage : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int8 : require
#extension GL_EXT_shader_explicit_arithmetic_types_int16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#if TIER >= 2
#extension GL_EXT_spirv_intrinsics : require
// OpSDot (SPV_KHR_integer_dot_product) on two packed 4 x int8 words: glslang 12 has no
// GL_EXT_integer_dot_product, so the instruction is named directly.
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018],
                  id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int fmt);
#define DOT4(a, b) sdot4x8((a), (b), 0)
#endif

layout(local_size_x_id = 100, local_size_y_id = 101, local_size_z_id = 102) in;

#ifdef PARAMS_BINDING
// src/vk/vk_ops.h vk_step_params: per batch row (id, position, cache slot, entry), per entry
// (pos0, n_tokens, first row, block table start), the output rows and their ban flags, the
// banned ids, the block tables.
layout(std430, binding = PARAMS_BINDING) readonly buffer Params {
    uint n_tokens, n_seqs, n_out, n_table;
    uint tok_off, seq_off, out_off, tab_off;
    uint ban_off, lst_off, n_ban;
    uint d[];
} prm;
#define VK_PAGE 16u
int p_token(uint t) { return int(prm.d[prm.tok_off + 4u * t]); }
uint p_pos(uint t) { return prm.d[prm.tok_off + 4u * t + 1u]; }
uint p_slot(uint t) { return prm.d[prm.tok_off + 4u * t + 2u]; }
uint p_entry(uint t) { return prm.d[prm.tok_off + 4u * t + 3u]; }
uint p_seq_pos0(uint e) { return prm.d[prm.seq_off + 4u * e]; }
uint p_seq_ntok(uint e) { return prm.d[prm.seq_off + 4u * e + 1u]; }
uint p_seq_row0(uint e) { return prm.d[prm.seq_off + 4u * e + 2u]; }
uint p_seq_table(uint e) { return prm.d[prm.seq_off + 4u * e + 3u]; }
uint p_out_row(uint i) { return prm.d[prm.out_off + i]; }
// output row i leaves the banned ids p_ban_id(0 .. n_ban - 1) (ascending) out of its candidates
bool p_out_ban(uint i) { return prm.d[prm.ban_off + i] != 0u; }
uint p_ban_id(uint j) { return prm.d[prm.lst_off + j]; }
// cache slot of position j of the sequence whose block table starts at d[table]
uint p_kv_slot(uint table, uint j) { return prm.d[table + j / VK_PAGE] * VK_PAGE + j % VK_PAGE; }
#endif

// The CPU path's kernels are sequential fma chains; their bits need a fused a * b + c. GLSL's
// fma() is fused on GPUs, but llvmpipe (lavapipe) lowers it to a multiply and an add.
// vk_dev_create probes the device once (attn_fma_probe.comp) and every pipeline gets EXACT_FMA
// (specialization constant 99) where fma() is
// not fused: xfma then emulates it with float operations that are each rounded to nearest
// (Boldo & Melquiond 2008, "Emulation of FMA and correctly rounded sums: proved algorithms
// using rounding to odd", IEEE TC 57(4), Algorithm 6): a * b = ph + pl exactly (Dekker's
// product, operands split by masking to 12 significant bits), c + ph = th + tl exactly
// (Knuth's TwoSum), then RN(th + RO(tl + pl)) with the inner sum rounded to odd.
// Exact for finite operands without underflow in the error terms; infinities as fma.
layout(constant_id = 99) const bool EXACT_FMA = false; // set by vk_pipe_create

void two_sum(float a, float b, out float s, out float e) {
    precise float ss = a + b;
    precise float bb = ss - a;
    precise float ee = (a - (ss - bb)) + (b - bb);
    s = ss;
    e = ee;
}

// a = ah + al with ah the top `bits` significant bits of a (a constant, 1..23) and al the rest,
// at most 24 - bits bits: 11 for a product of two fp16 values (at most 22 bits, so both halves
// have at most 11), 12 for any float (two halves of 12).
void fma_split(float a, uint bits, out float ah, out float al) {
    ah = uintBitsToFloat(floatBitsToUint(a) & (0xffffffffu << (24u - bits)));
    precise float l = a - ah;
    al = l;
}

// a * b = p + e exactly (Dekker's product; operands split into 12-bit halves by fma_split, so
// every partial product is exact). No fma needed. The _split form takes the halves, for an
// operand split once for several products.
void two_prod_split(float a, float ah, float al, float b, float bh, float bl, out float p,
                    out float e) {
    precise float pp = a * b;
    precise float ee = ((ah * bh - pp) + ah * bl + al * bh) + al * bl;
    p = pp;
    e = ee;
}

void two_prod(float a, float b, out float p, out float e) {
    float ah, al, bh, bl;
    fma_split(a, 12u, ah, al);
    fma_split(b, 12u, bh, bl);
    two_prod_split(a, ah, al, b, bh, bl, p, e);
}

// RN(c + ph + pl) where ph + pl = a * b exactly and ph = RN(a * b): the end of the algorithm
// above. s is rounded to odd: when inexact (e != 0) and even, it moves one ulp toward e, which
// is u - 1 or u + 1 as e's sign differs from s's or not; (u - m) | 1 gives both and keeps an
// odd u.
float fma_tail(float ph, float pl, float c) {
    float th, tl, s, e;
    two_sum(c, ph, th, tl);
    two_sum(tl, pl, s, e);
    const uint u = floatBitsToUint(s);
    const uint ro = e != 0.0 ? (u - ((floatBitsToUint(e) ^ u) >> 31)) | 1u : u;
    precise float z = th + uintBitsToFloat(ro);
    return z;
}

float fma_emulated(float a, float b, float c) {
    precise float ph = a * b;
    if (isinf(ph) || isnan(ph) || isinf(c)) { // what fma gives (exp(-inf) needs it)
        precise float r = ph + c;
        return r;
    }
    float p, pl;
    two_prod(a, b, p, pl);
    if (c == 0.0 && p == 0.0) { // the sign of an exact zero: -0 only when both are
        precise float r = p + c;
        return r;
    }
    return fma_tail(p, pl, c);
}

// The matrix products' chains, fma(d_w * d_x, isum, acc), have finite operands and a finite
// result, and acc is never -0: the special cases above are left out (a NaN or infinite scale
// gives NaN, where fma may give an infinity; c = -0 with a zero product gives +0).
float fma_emulated_finite(float a, float b, float c) {
    float p, pl;
    two_prod(a, b, p, pl);
    return fma_tail(p, pl, c);
}

// The same where a = ah + al is split so that ah * b and al * b are exact (each at most 24
// significant bits) and |al| < ulp(ah): then a * b = ah * b + al * b, which Fast2Sum (the
// larger term first) turns into RN(a * b) and its exact error in 3 operations instead of
// Dekker's 11. matvec.comp splits d_w * d_x (22 bits) into 11 + 11 for block sums of at most
// 13 bits (quant.glsl Q_ISUM_SMALL).
float fma_emulated_split(float ah, float al, float b, float c) {
    precise float p1 = ah * b;
    precise float p2 = al * b;
    precise float ph = p1 + p2;
    precise float pl = p2 - (ph - p1);
    return fma_tail(ph, pl, c);
}

// fma(a, b, c) for a in [0, 1] and F16 values b and c (as attn_lane.comp's value weights,
// values and F16 accumulators), a split as ah + al by fma_split(a, 12u, ..) (12 significant
// bits each at most), once for many b: ah * b and al * b are exact (11 + 12 bits), and from a >= 2^-70
// every term is a multiple of 2^-117, so no subnormal breaks fma_emulated_split. Where it
// cannot answer, q = RN(RN(a * b) + c) is the fma: below 2^-70 a * b is under half an ulp of
// any nonzero c; an exact zero sum has an exact product; inf and NaN are not changed by the
// product's rounding. With c = +-0 and a nonzero product, the fma is RN(a * b) itself (q is
// not where the product underflows to -0).
float fma_f16_split(float a, float ah, float al, float b, float c) {
    precise float p = a * b;
    precise float q = p + c;
    const float r = fma_emulated_split(ah, al, b, c);
    const float q0 = c == 0.0 && a != 0.0 && b != 0.0 ? p : q;
    return (a < uintBitsToFloat(0x1c800000u) || !(abs(q) < uintBitsToFloat(0x7f800000u)) ||
            r == 0.0) ? q0 : r;
}

float xfma_f16_split(float a, float ah, float al, float b, float c) {
    if (EXACT_FMA) return fma_f16_split(a, ah, al, b, c);
    precise float r = fma(a, b, c);
    return r;
}

float xfma_finite(float a, float b, float c) {
    if (EXACT_FMA) return fma_emulated_finite(a, b, c);
    precise float r = fma(a, b, c);
    return r;
}

float xfma_split(float a, float ah, float al, float b, float c) {
    if (EXACT_FMA) return fma_emulated_split(ah, al, b, c);
    precise float r = fma(a, b, c);
    return r;
}

// fma(a, b, c) with a and b split by fma_split(.., 12u, ..): fma_emulated_finite's domain.
float xfma_dekker(float a, float ah, float al, float b, float bh, float bl, float c) {
    if (EXACT_FMA) {
        float p, e;
        two_prod_split(a, ah, al, b, bh, bl, p, e);
        return fma_tail(p, e, c);
    }
    precise float r = fma(a, b, c);
    return r;
}

// fma(j, k, k) for a power of two k where the result is normal: RN(k (1 + j)) = RN(1 + j) k,
// the power of two scaling the rounding.
float xfma_pow2(float j, float k) {
    if (EXACT_FMA) {
        precise float s = 1.0 + j;
        precise float r = s * k;
        return r;
    }
    precise float r = fma(j, k, k);
    return r;
}

float xfma(float a, float b, float c) {
    if (EXACT_FMA) return fma_emulated(a, b, c);
    precise float r = fma(a, b, c);
    return r;
}

// exp(x) exactly as the CPU path's cpu_vec_expf (Arm optimized-routines' vector expf): the
// shader does not depend on the driver's exp precision, and SiLU and the prefill softmax give
// the CPU's bits. Its fmas are fused (xfma_*) where the driver's fma() is not, each in the
// cheapest form that is exact for its operands (test_fma_exp checks every branch against
// cpu_vec_expf):
//  - z = fma(x, log2 e, 1.5 * 2^23): Dekker's product (the constant split once), below
//    |x| = 2^100; above, the plain multiply-add gives z the fma's sign and |n| > 192, all the
//    result depends on (Dekker's product would overflow);
//  - fma(-n, ln2_hi, x): ln2_hi has 15 significant bits and n (an integer, |n| <= 192 where b
//    is used) at most 8, so the product is exact: a multiply and a subtract;
//  - fma(-n, ln2_lo, r): ln2_lo in two 12-bit halves, each times n exact (fma_emulated_split);
//  - the polynomial's four: Dekker's product, b and u split once for two fmas each;
//  - fma(j, k, k), k = 2^n, and fma(s2, j, s2) (s2 in [2^-67, 2^65]): xfma_pow2 wherever the
//    result is normal; at n = -126 it can be subnormal, but k and the result lie on the same
//    grid (2^-149) as RN(j k), so k + RN(j k) is exact.
#define F32C(bits) uintBitsToFloat(bits)
float vexp(float x) {
    const float shift = F32C(0x4b400000u); // 0x1.8p23
    const float l2e = F32C(0x3fb8aa3bu), ln2_hi = F32C(0x3f317200u), ln2_lo = F32C(0x35bfbe8eu);
    float xh, xl, ch, cl;
    fma_split(x, 12u, xh, xl);
    fma_split(l2e, 12u, ch, cl);
    precise float zp = x * l2e;
    precise float zq = zp + shift;
    const bool huge = EXACT_FMA && !(abs(x) < F32C(0x71800000u)); // 2^100
    const float z = huge ? zq : xfma_dekker(x, xh, xl, l2e, ch, cl, shift);
    precise float n = z - shift;
    precise float nh = n * ln2_hi;
    precise float r = x - nh;
    float lh, ll;
    fma_split(ln2_lo, 12u, lh, ll);
    const float b = xfma_split(ln2_lo, lh, ll, -n, r);
    uint e = floatBitsToUint(z) << 23;
    float k = uintBitsToFloat(e + 0x3f800000u);
    precise float u = b * b;
    precise float jm = F32C(0x3f7ffff6u) * b;
    float bh, bl, uh, ul, c0h, c0l, c2h, c2l;
    fma_split(b, 12u, bh, bl);
    fma_split(u, 12u, uh, ul);
    const float c0 = F32C(0x3c072010u), c2 = F32C(0x3e2aaf33u);
    fma_split(c0, 12u, c0h, c0l);
    fma_split(c2, 12u, c2h, c2l);
    const float p0 = xfma_dekker(c0, c0h, c0l, b, bh, bl, F32C(0x3d2b9f17u));
    const float p1 = xfma_dekker(c2, c2h, c2l, b, bh, bl, F32C(0x3efffedbu));
    float ph, pl, qh, ql;
    fma_split(p0, 12u, ph, pl);
    const float q = xfma_dekker(p0, ph, pl, u, uh, ul, p1);
    fma_split(q, 12u, qh, ql);
    const float j = xfma_dekker(q, qh, ql, u, uh, ul, jm);
    if (!(abs(n) > 126.0)) {
        precise float jk = j * k;
        precise float kj = k + jk; // n = -126: exact on the subnormal grid
        return EXACT_FMA && n < -125.5 ? kj : xfma_pow2(j, k);
    }
    uint g = n <= 0.0 ? 0x82000000u : 0u;
    float s1 = uintBitsToFloat(g + 0x7f000000u);
    float s2 = uintBitsToFloat(e - g);
    if (abs(n) > 192.0) {
        precise float r2 = s1 * s1;
        return r2;
    }
    precise float r3 = xfma_pow2(j, s2) * s1;
    return r3;
}

// fp16 <-> fp32 through the packing built-ins, which every tier has (tier 0 stores F16 data
// as pairs in 32-bit words).
float h2f(uint bits) { return unpackHalf2x16(bits).x; }

// The low 16 bits of h (an F16 value) as a float, in integer operations, for CPU drivers:
// lavapipe's F16 -> F32 conversion is a long sequence (in attn_lane.comp it was ~45% of the
// time). Normal values: the exponent rebiased (+112); inf and NaN: exponent 255, the same
// significand; zero and subnormals: 2^-14 (1 + m / 1024) - 2^-14 = m 2^-24, exact, and made of
// normal floats only, so a driver that flushes denormals gives the same. test_fma_exp checks
// all 65,536 values against the CPU's conversion.
float h2f_int(uint h) {
    const uint o = (h & 0x7fffu) << 13, e = o & 0x0f800000u;
    const uint m = o + (e == 0x0f800000u ? 0x70000000u : e == 0u ? 0x38800000u : 0x38000000u);
    precise float s = uintBitsToFloat(m) - uintBitsToFloat(0x38800000u); // - 2^-14
    const float f = e == 0u ? s : uintBitsToFloat(m);
    return uintBitsToFloat(floatBitsToUint(f) | ((h & 0x8000u) << 16));
}
uint f2h(float v) { return packHalf2x16(vec2(v, 0.0)) & 0xffffu; }

#endif
