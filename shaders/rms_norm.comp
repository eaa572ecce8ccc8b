// RMSNorm (Zhang & Sennrich 2019): dst = src / sqrt(mean(src^2) + eps) * w. One workgroup per
// row; the sum of squares is a tree reduction in shared memory (every tier has it), the
// scale and weight are applied as the CPU path does: (x * scale) * w.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer S { float src[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) writeonly buffer D { float dst[]; };
layout(push_constant) uniform PC {
    uint n_rows, width, stride_s, stride_d;
    float eps;
    uint src_row0; // rows src_row0 + i are read, rows i written

} pc;

shared float red[gl_WorkGroupSize.x];

void main() {
    const uint row = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint base = (pc.src_row0 + row) * pc.stride_s;
    precise float acc = 0.0;
    for (uint i = tid; i < pc.width; i += nt) {
        precise float x = src[base + i];
        acc += x * x;
    }
    red[tid] = acc;
    barrier();
    for (uint s = nt / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        barrier();
    }
    precise float mean = red[0] / float(pc.width);
    precise float scale = 1.0 / sqrt(mean + pc.eps);
    for (uint i = tid; i < pc.width; i += nt) {
        precise float y = (src[base + i] * scale) * w[i];
        dst[row * pc.stride_d + i] = y;
    }
}
