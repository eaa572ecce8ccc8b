// SwiGLU (Shazeer 2020): dst = silu(gate) * up, silu(x) = x / (1 + exp(-x)), with the CPU
// path's exp so the bits match. One invocation per element; rows of `width` floats at
// `stride` apart in each buffer.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer G { float gate[]; };
layout(std430, binding = 1) readonly buffer U { float up[]; };
layout(std430, binding = 2) writeonly buffer D { float dst[]; };
layout(push_constant) uniform PC {
    uint n_rows, width, stride_g, stride_u, stride_d;
} pc;

void main() {
    uint i = gl_GlobalInvocationID.x, row = gl_GlobalInvocationID.y;
    if (i >= pc.width || row >= pc.n_rows) return;
    float x = gate[row * pc.stride_g + i];
    precise float s = x / (1.0 + vexp(0.0 - x));
    precise float y = s * up[row * pc.stride_u + i];
    dst[row * pc.stride_d + i] = y;
}
