// Whether fma() is fused on this device, and a check of the emulations (common.glsl): for the
// triples (a, b, c) in x[3i..3i+2], o[5i] = fma(a, b, c), o[5i + 1] = fma_emulated(a, b, c),
// o[5i + 2] = exp_libm(a), which the test compares with glibc's expf, o[5i + 3] =
// fma_emulated_finite(a, b, c) and o[5i + 4] = fma_emulated_split of a split as matvec.comp
// splits d_w * d_x (valid where a is a product of two fp16 values and b an integer of at most
// 2^13 in magnitude).
// vk_attn_create runs it once on a triple where the two roundings differ; the test runs it on
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
    o[5u * i] = f;
    o[5u * i + 1u] = fma_emulated(a, b, c);
    o[5u * i + 2u] = exp_libm(a);
    o[5u * i + 3u] = fma_emulated_finite(a, b, c);
    float ah, al;
    fma_split_11(a, ah, al);
    o[5u * i + 4u] = fma_emulated_split(ah, al, b, c);
}
