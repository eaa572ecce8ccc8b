// F32 activation rows -> the vec_dot_type of a weight format, in the layout of quant.glsl, with
// the numbers of the CPU path's quantizers (src/core/quant.c; the AVX2 ones give the same bytes):
// the same scale, codes rounded half to even, Q8_1's s and Q8_K's bsums and d. One invocation
// per block (per element for F16/BF16/F32), so nothing depends on the order of a reduction.
//
// Vulkan lets division be off by 2.5 ulp and leaves the rounding of packHalf2x16 open, and
// the scales must be the CPU's bits: division is corrected to round to nearest (div_rn) and
// fp32 -> fp16/bf16 is done on the bits, as core_fp32_to_fp16/_bf16 do. Values are assumed
// far from the overflow and subnormal ranges (activations are).
//
// One define: ACT_Q8 (Q8_0 and Q8_1), ACT_Q8K, ACT_F16, ACT_BF16 or ACT_F32 (a compacting copy).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "quant.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Q { uint q[]; };
layout(push_constant) uniform PC {
    uint n_in, x_stride; // floats per row, floats between rows of x
    uint q_row_words;    // words between rows of q
    uint n_tok;
} pc;

// a - q b, exact up to one final rounding, from correctly rounded mul/add only (Dekker's
// product; the fma route would need the driver to fuse, which Vulkan does not promise).
float residual(float a, float q, float b) {
    precise float p = q * b;
    precise float cq = 4097.0 * q, cb = 4097.0 * b;
    precise float qh = cq - (cq - q), bh = cb - (cb - b);
    precise float ql = q - qh, bl = b - bh;
    precise float e = ((qh * bh - p) + qh * bl + ql * bh) + ql * bl; // q b = p + e
    precise float r = (a - p) - e;
    return r;
}

// a / b rounded to nearest: the quotient the hardware gives (Vulkan allows 2.5 ulp), moved by
// an ulp while that lowers the residual a - q b. A quotient of two floats is never halfway
// between two floats, so the smaller residual picks the right one.
float div_rn(float a, float b) {
    precise float qv = a / b;
    for (int it = 0; it < 3; it++) {
        const float r = residual(a, qv, b);
        if (r == 0.0 || qv == 0.0 || isinf(qv) || isnan(qv)) break;
        const bool up = (r > 0.0) == (b > 0.0); // a / b > qv
        const float q2 = uintBitsToFloat(uint(int(floatBitsToUint(qv)) +
                                              (up == (qv > 0.0) ? 1 : -1)));
        if (abs(residual(a, q2, b)) < abs(r)) qv = q2;
        else break;
    }
    return qv;
}

// core_fp32_to_fp16: round to nearest even, overflow to inf, subnormals, quiet NaN.
uint f2h_rne(float f) {
    const uint x = floatBitsToUint(f), sign = (x >> 16) & 0x8000u, absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u);
    if (absx >= 0x477ff000u) return sign | 0x7c00u;
    if (absx < 0x38800000u) {
        if (absx < 0x33000000u) return sign;
        const uint man = (absx & 0x7fffffu) | 0x800000u, shift = 126u - (absx >> 23);
        const uint halfway = 1u << (shift - 1u), rem = man & ((1u << shift) - 1u);
        uint r = man >> shift;
        if (rem > halfway || (rem == halfway && (r & 1u) != 0u)) r++;
        return sign | r;
    }
    uint r = (absx >> 13) - ((127u - 15u) << 10);
    const uint rem = absx & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u) != 0u)) r++;
    return sign | r;
}

// The float a fp16 rounding gives, as bits (exact: every fp16 is a float).
uint fp16_value(float f) { return floatBitsToUint(unpackHalf2x16(f2h_rne(f)).x); }

void main() {
    const uint t = gl_WorkGroupID.y, i = gl_GlobalInvocationID.x;
    const uint qrow = t * pc.q_row_words;
#if defined(ACT_Q8)
    if (i >= pc.n_in / 32u) return;
    const uint xo = t * pc.x_stride + 32u * i, qo = qrow + XQ8_WORDS * i;
    float amax = 0.0;
    for (uint j = 0u; j < 32u; j++) amax = max(amax, abs(x[xo + j]));
    // llama.cpp's x86 quantize_row_q8_0/_1: d = amax / 127, codes x * (127 / amax)
    const float d = div_rn(amax, 127.0);
    const float id = amax != 0.0 ? div_rn(127.0, amax) : 0.0;
    int sum = 0;
    for (uint w = 0u; w < 8u; w++) {
        uint word = 0u;
        for (uint k = 0u; k < 4u; k++) {
            precise float v = x[xo + 4u * w + k] * id;
            const int c = int(roundEven(v));
            sum += c;
            word |= (uint(c) & 0xffu) << (8u * k);
        }
        q[qo + w] = word;
    }
    precise float ds = d * float(sum); // the float product, then fp16: as ggml
    q[qo + 8u] = fp16_value(d);
    q[qo + 9u] = fp16_value(ds);
    q[qo + 10u] = uint(sum);
    q[qo + 11u] = 0u;
#elif defined(ACT_Q8K)
    if (i >= pc.n_in / 256u) return;
    const uint xo = t * pc.x_stride + 256u * i, qo = qrow + XQ8K_WORDS * i;
    // ggml's quantize_row_q8_K_ref: the signed value of largest magnitude, first on ties
    float amax = 0.0, mx = 0.0;
    for (uint j = 0u; j < 256u; j++) {
        const float v = x[xo + j];
        if (amax < abs(v)) {
            amax = abs(v);
            mx = v;
        }
    }
    if (amax == 0.0) {
        for (uint w = 0u; w < XQ8K_WORDS; w++) q[qo + w] = 0u;
        return;
    }
    const float iscale = div_rn(-127.0, mx);
    for (uint g = 0u; g < 16u; g++) {
        int bs = 0;
        for (uint w = 0u; w < 4u; w++) {
            uint word = 0u;
            for (uint k = 0u; k < 4u; k++) {
                precise float v = iscale * x[xo + 16u * g + 4u * w + k];
                const int c = min(int(roundEven(v)), 127);
                bs += c;
                word |= (uint(c) & 0xffu) << (8u * k);
            }
            q[qo + 4u * g + w] = word;
        }
        q[qo + 64u + g] = uint(bs);
    }
    q[qo + 80u] = floatBitsToUint(div_rn(1.0, iscale));
    q[qo + 81u] = 0u;
    q[qo + 82u] = 0u;
    q[qo + 83u] = 0u;
#else
    if (i >= pc.n_in) return;
    const float v = x[t * pc.x_stride + i];
#if defined(ACT_F16)
    q[qrow + i] = fp16_value(v);
#elif defined(ACT_BF16)
    // core_fp32_to_bf16: quiet NaN, else round to nearest even on the bits
    uint u = floatBitsToUint(v);
    u = (u & 0x7fffffffu) > 0x7f800000u ? (u | 0x400000u) & 0xffff0000u
                                        : (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    q[qrow + i] = u;
#else
    q[qrow + i] = floatBitsToUint(v);
#endif
#endif
}
