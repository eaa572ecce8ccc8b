// Read bandwidth (src/vk/vk_bench.c): each invocation XORs a grid-strided share of the
// buffer's 16-byte words (four loads in flight), the workgroup folds its invocations' values
// through shared memory, and invocation 0 writes one word per workgroup, so no load can be
// dropped. XOR is order-free: the XOR of all the words written equals the XOR of every 32-bit
// word of the input, whatever the grid (vk_bench_read_checksum; tests/test_bench_ops.c).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer S { uvec4 src[]; };
layout(std430, binding = 1) writeonly buffer D { uint dst[]; };
layout(push_constant) uniform PC {
    uint n;    // 16-byte words in src
    uint dst0; // this dispatch's first output word
} pc;

shared uint red[gl_WorkGroupSize.x];

void main() {
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint stride = gl_NumWorkGroups.x * nt;
    uint i = gl_WorkGroupID.x * nt + tid;
    uvec4 a = uvec4(0u), b = uvec4(0u), c = uvec4(0u), d = uvec4(0u);
    for (; i + 3u * stride < pc.n; i += 4u * stride) {
        a ^= src[i];
        b ^= src[i + stride];
        c ^= src[i + 2u * stride];
        d ^= src[i + 3u * stride];
    }
    for (; i < pc.n; i += stride) a ^= src[i];
    a ^= b ^ c ^ d;
    red[tid] = a.x ^ a.y ^ a.z ^ a.w;
    barrier();
    for (uint s = nt / 2u; s > 0u; s >>= 1) { // nt is a power of two (vk_bench.c)
        if (tid < s) red[tid] ^= red[tid + s];
        barrier();
    }
    if (tid == 0u) dst[pc.dst0 + gl_WorkGroupID.x] = red[0];
}
