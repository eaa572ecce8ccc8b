// Whether fma() is fused on this device, and a check of the emulation (attn.glsl xfma):
// o[3i] = fma(a, b, c), o[3i + 1] = fma_emulated(a, b, c) for the triples in x[3i..3i+2],
// and o[3i + 2] = exp_libm(a), which the test compares with glibc's expf.
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
    precise float f = fma(x[3u * i], x[3u * i + 1u], x[3u * i + 2u]);
    o[3u * i] = f;
    o[3u * i + 1u] = fma_emulated(x[3u * i], x[3u * i + 1u], x[3u * i + 2u]);
    o[3u * i + 2u] = exp_libm(x[3u * i]);
}
