// RMSNorm (Zhang & Sennrich 2019): dst = src / sqrt(mean(src^2) + eps) * w, with the CPU path's
// bits (src/cpu/cpu_backend.c op_rms_norm, which is ggml's arithmetic): the float squares are
// summed one after the other in IEEE double, the mean is the double quotient by the width,
// rounded to float; then scale = 1 / sqrt(mean + eps) and y = (x * scale) * w in float.
//
// A sequential double sum is not associative, so no tree reduction can give its bits, and
// tier 0 has no fp64. Thread 0 of the row's workgroup therefore runs the CPU's loop on doubles
// emulated with 32-bit integers (non-negative values only, round to nearest even, exact), and
// the workgroup then applies the scale in parallel. The serial loop is ~40 integer operations
// an element: about as long as the row's scaling pass on lavapipe; on GPUs it is latency
// (a few microseconds a row) that a prefill hides across rows.
//
// Not exact: a mean below float's normal range is rounded as the driver's ldexp does (the
// eps added next then dominates it); 1 / sqrt() is the driver's, correctly rounded on lavapipe
// but within the 2-3 ulp Vulkan allows elsewhere.
#version 450
#extension GL_GOOGLE_include_directive : require
#define PARAMS_BINDING 3
#include "common.glsl"

layout(std430, binding = 0) readonly buffer S { float src[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) writeonly buffer D { float dst[]; };
layout(push_constant) uniform PC {
    uint n_rows, width, stride_s, stride_d;
    float eps;
    uint src_row0; // rows src_row0 + i are read, rows i written
    uint gather;   // instead: the step's output rows (the output head) are read
} pc;

// ROW_LANE (CPU drivers, vk_misc_set_lane): one invocation per row does the whole row, so a
// step's rows share the SIMD lanes of lavapipe's serial loop instead of one active lane each.
layout(constant_id = 0) const bool ROW_LANE = false;

shared float scale_sh;

// ---- 64-bit unsigned integers as uvec2 (x low word, y high word) ----
uvec2 shl64(uvec2 a, uint s) { // s < 64
    if (s == 0u) return a;
    if (s >= 32u) return uvec2(0u, a.x << (s - 32u));
    return uvec2(a.x << s, (a.y << s) | (a.x >> (32u - s)));
}
// a >> s, with the OR of the bits shifted out kept in bit 0 (sticky); any s
uvec2 shr64_sticky(uvec2 a, uint s) {
    if (s == 0u) return a;
    if (s >= 64u) return uvec2((a.x | a.y) != 0u ? 1u : 0u, 0u);
    uvec2 r;
    uint lost;
    if (s >= 32u) {
        const uint t = s - 32u;
        r = uvec2(t == 0u ? a.y : a.y >> t, 0u);
        lost = a.x | (t == 0u ? 0u : a.y << (32u - t));
    } else {
        r = uvec2((a.x >> s) | (a.y << (32u - s)), a.y >> s);
        lost = a.x << (32u - s);
    }
    if (lost != 0u) r.x |= 1u;
    return r;
}
uvec2 add64(uvec2 a, uvec2 b) {
    uint c;
    const uint lo = uaddCarry(a.x, b.x, c);
    return uvec2(lo, a.y + b.y + c);
}
int msb64(uvec2 a) { return a.y != 0u ? 32 + findMSB(a.y) : findMSB(a.x); } // -1 for 0

// Rounds m (top bit at 62 or 63) to the 53 bits under its top, to nearest even: the double
// m * 2^e as a 53-bit mantissa (bit 52 set) and its exponent.
void round53(uvec2 m, int e, out uvec2 rm, out int re) {
    if ((m.y & 0x80000000u) != 0u) {
        m = shr64_sticky(m, 1u);
        e += 1;
    }
    const uint rest = m.x & 0x3ffu;
    uvec2 k = shr64_sticky(uvec2(m.x & ~0x3ffu, m.y), 10u); // no bits lost: exact shift
    if (rest > 0x200u || (rest == 0x200u && (k.x & 1u) != 0u)) k = add64(k, uvec2(1u, 0u));
    e += 10;
    if ((k.y & 0x00200000u) != 0u) { // carried to 2^53
        k = shr64_sticky(k, 1u);
        e += 1;
    }
    rm = k;
    re = e;
}

// s (m * 2^e, m == 0 or a 53-bit mantissa) + v, for a finite float v >= 0, rounded as double.
void dadd(inout uvec2 m, inout int e, float v) {
    const uint bits = floatBitsToUint(v), be = bits >> 23, fr = bits & 0x7fffffu;
    const uint vm = be == 0u ? fr : fr | 0x800000u;
    const int ve = be == 0u ? -149 : int(be) - 150;
    if (vm == 0u) return;
    const int vmsb = findMSB(vm);
    if (m == uvec2(0u)) {
        m = shl64(uvec2(vm, 0u), uint(52 - vmsb));
        e = ve - (52 - vmsb);
        return;
    }
    // the operand with the higher top bit goes to bit 62 of a 64-bit frame, the other is
    // shifted to the same scale (bits below the frame kept as a sticky bit)
    const int top_s = e + 52, top_v = ve + vmsb;
    uvec2 big, small;
    int f, small_e;
    if (top_s >= top_v) {
        big = shl64(m, 10u);
        f = e - 10;
        small = uvec2(vm, 0u);
        small_e = ve;
    } else {
        big = shl64(uvec2(vm, 0u), uint(62 - vmsb));
        f = ve - (62 - vmsb);
        small = m;
        small_e = e;
    }
    const int sh = small_e - f;
    small = sh >= 0 ? shl64(small, uint(sh)) : shr64_sticky(small, uint(-sh));
    round53(add64(big, small), f, m, e);
}

// float(double(m * 2^e) / d): the double quotient rounded to nearest even, then to float, as
// the CPU's (float)(sum / d). Long division of m * 2^27 (80 bits) by d < 2^24, a byte a step.
float dquot_to_float(uvec2 m, int e, uint d) {
    if (m == uvec2(0u)) return 0.0;
    // n = m << 27 as bytes, most significant first: 80 bits = 10 bytes
    const uvec2 lo = shl64(m, 27u);
    const uint hi = m.y >> 5; // bits 64..79 of m << 27
    uint r = 0u;
    uvec2 q = uvec2(0u);
    uint qhi = 0u; // quotient bits 64..79
    for (int i = 9; i >= 0; i--) {
        const uint byte = i >= 8 ? (hi >> (8u * uint(i - 8))) & 0xffu
                                 : ((i >= 4 ? lo.y : lo.x) >> (8u * uint(i & 3))) & 0xffu;
        r = (r << 8) | byte;
        const uint qd = r / d;
        r -= qd * d;
        qhi = (qhi << 8) | (q.y >> 24);
        q = shl64(q, 8u);
        q.x |= qd;
    }
    // quotient (qhi:q) * 2^(e - 27), remainder r: bring its top bit to 62 (sticky below)
    int qe = e - 27;
    if (qhi != 0u) {
        const uint s = uint(findMSB(qhi)) + 2u; // bits to drop so the top lands on 62
        const uvec2 dropped = shr64_sticky(q, s);
        q = uvec2(dropped.x, dropped.y | (qhi << (32u - s)));
        qe += int(s);
    } else {
        const int t = msb64(q);
        q = t > 62 ? shr64_sticky(q, uint(t - 62)) : shl64(q, uint(62 - t));
        qe += t > 62 ? t - 62 : -(62 - t);
    }
    if (r != 0u) q.x |= 1u;
    uvec2 m53;
    int e53;
    round53(q, qe, m53, e53);
    // second rounding, double -> float: keep 24 bits (fewer below float's normal range)
    const int top = e53 + 52; // the quotient is in [2^top, 2^(top + 1))
    if (top > 127) return uintBitsToFloat(0x7f800000u);
    uint drop = 29u;
    if (top < -126) drop += uint(min(-126 - top, 30));
    uint k = drop >= 32u ? m53.y >> (drop - 32u) : (m53.x >> drop) | (m53.y << (32u - drop));
    const uvec2 rest = drop >= 32u ? uvec2(m53.x, m53.y & ((1u << (drop - 32u)) - 1u))
                                   : uvec2(m53.x & ((1u << drop) - 1u), 0u);
    const uvec2 half_ = drop - 1u >= 32u ? uvec2(0u, 1u << (drop - 33u))
                                          : uvec2(1u << (drop - 1u), 0u);
    const bool above = rest.y > half_.y || (rest.y == half_.y && rest.x > half_.x);
    if (above || (rest == half_ && (k & 1u) != 0u)) k += 1u;
    return ldexp(float(k), e53 + int(drop));
}

// 1 / sqrt(mean of the squares + eps) of the row at base, with the CPU's bits.
float row_scale(uint base) {
    uvec2 m = uvec2(0u);
    int e = 0;
    bool special = false;
    precise float sp = 0.0; // inf or NaN squares: what the double sum would become
    for (uint i = 0u; i < pc.width; i++) {
        precise float x2 = src[base + i] * src[base + i];
        if (isinf(x2) || isnan(x2)) {
            special = true;
            sp += x2;
        } else {
            dadd(m, e, x2);
        }
    }
    const float mean = special ? sp : dquot_to_float(m, e, pc.width);
    precise float t = mean + pc.eps;
    precise float s = 1.0 / sqrt(t);
    return s;
}

void main() {
    if (ROW_LANE) {
        const uint row = gl_GlobalInvocationID.x;
        if (row >= pc.n_rows) return;
        const uint base = (pc.gather != 0u ? p_out_row(row) : pc.src_row0 + row) * pc.stride_s;
        const float scale = row_scale(base);
        for (uint i = 0u; i < pc.width; i++) {
            precise float y = (src[base + i] * scale) * w[i];
            dst[row * pc.stride_d + i] = y;
        }
        return;
    }
    const uint row = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint base = (pc.gather != 0u ? p_out_row(row) : pc.src_row0 + row) * pc.stride_s;
    if (tid == 0u) scale_sh = row_scale(base);
    barrier();
    const float scale = scale_sh;
    for (uint i = tid; i < pc.width; i += nt) {
        precise float y = (src[base + i] * scale) * w[i];
        dst[row * pc.stride_d + i] = y;
    }
}
