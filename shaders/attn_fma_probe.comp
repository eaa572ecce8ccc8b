// Whether fma() is fused on this device, and a check of the emulations (common.glsl): for the
// triples (a, b, c) in x[3i..3i+2], o[9i] = fma(a, b, c), o[9i + 1] = fma_emulated(a, b, c),
// o[9i + 2] = exp_libm(a), which the test compares with glibc's expf, o[9i + 3] =
// fma_emulated_finite(a, b, c), o[9i + 4] = fma_emulated_split of a split as matvec.comp
// splits d_w * d_x (valid where a is a product of two fp16 values and b an integer of at most
// 2^13 in magnitude), o[9i + 5] = fma_f16_split of a split as attn_lane.comp splits a value
// weight (valid where a is in [0, 1] and b and c are F16 values), o[9i + 6] = attn.glsl's
// f16r(a), a rounded to F16, o[9i + 7] = vexp(a), the CPU path's exp (SiLU), and
// o[9i + 8] = h2f_int of b's low 16 bits (an F16 value).
// vk_dev_create runs it once on a triple where the two roundings differ; the test runs it on
// random triples against C's fmaf.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "attn.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform PC { uint n; } pc;

void main() {
    const uint i = gl_GlobalInvocationID.x;
    if (i >= pc.n) return;
    const float a = x[3u * i], b = x[3u * i + 1u], c = x[3u * i + 2u];
    precise float f = fma(a, b, c);
    o[9u * i] = f;
    o[9u * i + 1u] = fma_emulated(a, b, c);
    o[9u * i + 2u] = exp_libm(a);
    o[9u * i + 3u] = fma_emulated_finite(a, b, c);
    float ah, al;
    fma_split(a, 11u, ah, al);
    o[9u * i + 4u] = fma_emulated_split(ah, al, b, c);
    fma_split(a, 12u, ah, al);
    o[9u * i + 5u] = fma_f16_split(a, ah, al, b, c);
    o[9u * i + 6u] = f16r(a);
    o[9u * i + 7u] = vexp(a);
    o[9u * i + 8u] = h2f_int(floatBitsToUint(b) & 0xffffu);
}
