// Whether fma() is fused on this device, and a check of the emulations (common.glsl): for the
// triples (a, b, c) in x[3i..3i+2], o[8i] = fma(a, b, c), o[8i + 1] = fma_emulated(a, b, c),
// o[8i + 2] = exp_libm(a), which the test compares with glibc's expf, o[8i + 3] =
// fma_emulated_finite(a, b, c), o[8i + 4] = fma_emulated_split of a split as matvec.comp
// splits d_w * d_x (valid where a is a product of two fp16 values and b an integer of at most
// 2^13 in magnitude), o[8i + 5] = fma_f16_split of a split as attn_lane.comp splits a value
// weight (valid where a is in [0, 1] and b and c are F16 values), o[8i + 6] = attn.glsl's
// f16r(a), a rounded to F16, and o[8i + 7] = vexp(a), the CPU path's exp (SiLU).
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
    o[8u * i] = f;
    o[8u * i + 1u] = fma_emulated(a, b, c);
    o[8u * i + 2u] = exp_libm(a);
    o[8u * i + 3u] = fma_emulated_finite(a, b, c);
    float ah, al;
    fma_split(a, 11u, ah, al);
    o[8u * i + 4u] = fma_emulated_split(ah, al, b, c);
    fma_split(a, 12u, ah, al);
    o[8u * i + 5u] = fma_f16_split(a, ah, al, b, c);
    o[8u * i + 6u] = f16r(a);
    o[8u * i + 7u] = vexp(a);
}
