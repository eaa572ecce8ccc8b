// Shared by the attention kernels (src/vk/vk_ops_attn.c; they read the step parameters at
// binding 0, PARAMS_BINDING, through common.glsl): the F16 KV cache as pairs of halves
// (tier 0: packed in uint words; tier 1+: f16vec2 storage), rounding to F16, and llama.cpp's
// padded cache length. Nothing here writes memory.
#ifndef ATTN_GLSL
#define ATTN_GLSL

#if TIER >= 1
#define KV_T f16vec2
vec2 kv_get(f16vec2 w) { return vec2(w); }
f16vec2 kv_put(vec2 v) { return f16vec2(v); }
float f16r(float x) { return float(float16_t(x)); }
#else
#define KV_T uint
vec2 kv_get(uint w) { return unpackHalf2x16(w); }
uint kv_put(vec2 v) { return packHalf2x16(v); }
// Rounding to F16 in the float's bits: lavapipe converts F32 to F16 (packHalf2x16, and
// float16_t at tier 1 alike) in a long software sequence; attn_lane.comp's two roundings per
// element were ~25% of its time. test_vk_attn test_fma_exp checks it against the CPU's.
float f16r(float x) {
    const uint u = floatBitsToUint(x), a = u & 0x7fffffffu;
    // normal F16 range: round the significand to 10 bits, to nearest even, in the bits
    uint n = (a + 0xfffu + ((a >> 13) & 1u)) & 0xffffe000u;
    n = n > 0x477fe000u ? 0x7f800000u : n; // past 65504 (or inf): inf
    // under 2^-14: multiples of 2^-24, by the sum with 0.75 (ulp 2^-24, even)
    precise float t = (uintBitsToFloat(a) + 0.75) - 0.75;
    const uint r = a < 0x38800000u ? floatBitsToUint(t) : n;
    return a > 0x7f800000u ? x : uintBitsToFloat(r | (u & 0x80000000u));
}
#endif

#define NEG_INF uintBitsToFloat(0xff800000u)

// The cache length llama.cpp's graph attends over: used cells padded to 256, at most n_ctx
// (src/cpu/cpu_backend.c llama_padded_kv); a single query splits the keys from 512 on.
uint padded_kv(uint n_ctx, uint n_kv) {
    uint p = max((n_kv + 255u) / 256u * 256u, 256u);
    return min(p, n_ctx);
}

// expf as glibc computes it (sysdeps/ieee754/flt-32/e_expf.c, from Arm's optimized-routines),
// where the CPU path calls libm: k = round(x * 32 / ln 2), r = x * 32 / ln 2 - k,
// y = 2^(k/32) * (C0 r^3 + C1 r^2 + C2 r + 1) in double, rounded to float. Here the same
// polynomial and table in float pairs (~2^-46 relative), so the float result is glibc's but
// where its double value lies within ~2^-46 of a rounding midpoint (tests/test_vk_attn.c
// finds 3.5e-7 of arguments). vexp (cpu_vec_expf's algorithm) differs from it in more than
// half of all arguments (by up to 2 ulp): too often for the F16 accumulator's roundings.
// Results under 2^-126 may flush to zero. EXP2_32: 2^(j/32) as (hi, lo) float pairs.
const uint EXP2_32[64] = uint[64](
    0x3f800000u, 0x00000000u, 0x3f82cd87u, 0xb34ea7a9u, 0x3f85aac3u, 0x334f9891u,
    0x3f88980fu, 0xb37eda4bu, 0x3f8b95c2u, 0xb260aba1u, 0x3f8ea43au, 0xb3697465u,
    0x3f91c3d3u, 0x33675624u, 0x3f94f4f0u, 0xb32e0212u, 0x3f9837f0u, 0x33231b71u,
    0x3f9b8d3au, 0xb30c5563u, 0x3f9ef532u, 0x33412342u, 0x3fa27043u, 0x30c3125au,
    0x3fa5fed7u, 0xb32c9d5eu, 0x3fa9a15bu, 0xb3162b08u, 0x3fad583fu, 0xb22deaf6u,
    0x3fb123f6u, 0xb37c5aa8u, 0x3fb504f3u, 0x32cfe77au, 0x3fb8fbafu, 0x330ec5f7u,
    0x3fbd08a4u, 0xb3414fe8u, 0x3fc12c4du, 0xb2d6663eu, 0x3fc5672au, 0x320aa837u,
    0x3fc9b9beu, 0xb37323a2u, 0x3fce248cu, 0x3228fc24u, 0x3fd2a81eu, 0xb35c1daau,
    0x3fd744fdu, 0xb2d4a58au, 0x3fdbfbb8u, 0xb3504a1cu, 0x3fe0ccdfu, 0xb21eab59u,
    0x3fe5b907u, 0xb2441be6u, 0x3feac0c7u, 0xb24116deu, 0x3fefe4bau, 0xb348464au,
    0x3ff5257du, 0x32292436u, 0x3ffa83b3u, 0xb2923758u);

// EXP2_SHARED (CPU-driver kernels): exp_libm reads the table from a shared copy, which
// exp2_table_init fills (call it first in main, before any return: it has a barrier).
// lavapipe's lookup in a constant array at a run-time index was ~25% of attn_lane.comp's time;
// a shared copy is one load.
#ifdef EXP2_SHARED
shared uint s_exp2[64];
#define EXP2_32_AT(i) s_exp2[i]
void exp2_table_init() {
    for (uint i = gl_LocalInvocationIndex; i < 64u; i += gl_WorkGroupSize.x * gl_WorkGroupSize.y)
        s_exp2[i] = EXP2_32[i];
    barrier();
}
#else
#define EXP2_32_AT(i) EXP2_32[i]
#endif

float exp_libm(float x) {
    if (isnan(x)) return x + x;
    if (x > uintBitsToFloat(0x42b17217u)) return uintBitsToFloat(0x7f800000u); // overflow
    if (x < uintBitsToFloat(0xc2cff1b4u)) return 0.0; // under 2^-150
    const float C2H = uintBitsToFloat(0x3cb17218u), C2L = uintBitsToFloat(0xae73ad2au);
    const float C1H = uintBitsToFloat(0x3975fe73u), C1L = uintBitsToFloat(0xacf053b1u);
    const float C0 = uintBitsToFloat(0x35e357c2u), shift = uintBitsToFloat(0x4b400000u);
    float zh, zl, rh, rl, a1, b1, r2h, r2l, a2, b2, u, v, ph, pl, a, b;
    two_prod(x, uintBitsToFloat(0x4238aa3bu), zh, zl); // x * 32 / ln 2
    precise float zl2 = zl + x * uintBitsToFloat(0x35257060u);
    precise float kf = (zh + shift) - shift;
    precise float d0 = zh - kf;
    two_sum(d0, zl2, rh, rl);
    two_prod(C2H, rh, a1, b1);
    precise float b1s = b1 + (C2H * rl + C2L * rh);
    two_prod(rh, rh, r2h, r2l);
    precise float r2ls = r2l + 2.0 * rh * rl;
    two_prod(C1H, r2h, a2, b2);
    precise float b2s = b2 + (C1H * r2ls + C1L * r2h);
    precise float t3 = C0 * r2h * rh;
    two_sum(a1, a2, u, v);
    precise float vs = v + ((b1s + b2s) + t3);
    const int k = int(kf), j = k & 31;
    const float sh = uintBitsToFloat(EXP2_32_AT(2 * j));
    const float sl = uintBitsToFloat(EXP2_32_AT(2 * j + 1));
    two_prod(sh, u, ph, pl);
    precise float lo = ((pl + sh * vs) + sl) + sl * u;
    two_sum(sh, ph, a, b);
    precise float res = a + (b + lo);
    const int e = k >> 5, e1 = e / 2, e2 = e - e1; // 2^e in two factors: no overflow
    precise float y = res * uintBitsToFloat(uint(e1 + 127) << 23) *
                      uintBitsToFloat(uint(e2 + 127) << 23);
    return y;
}

#endif
