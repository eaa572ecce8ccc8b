// Argmax of each row of F32 logits: the index of the largest, the lowest index on ties, a NaN
// never winning over a number (sample.glsl's key order). One workgroup per row: each
// invocation scans a strided share of the row, then the workgroup reduces (key, index) pairs:
// tier 0 through a tree in shared memory, tier 1 with subgroup max/min and one shared step.
// A row whose flag in the step parameters says so leaves the banned ids out (sample.glsl
// is_banned): they never become an invocation's best, so the reduction never sees them.
#version 450
#extension GL_GOOGLE_include_directive : require
#define PARAMS_BINDING 2
#include "common.glsl"
#include "sample.glsl"

layout(std430, binding = 0) readonly buffer L { uint logits[]; }; // F32 bits
layout(std430, binding = 1) writeonly buffer I { uint ids[]; };
layout(push_constant) uniform PC {
    uint n_rows, width, stride;
    uint ban; // 0: no parameter buffer is bound (binding 2 is a stand-in): nothing banned
} pc;

shared uint s_key[gl_WorkGroupSize.x];
shared uint s_id[gl_WorkGroupSize.x];

void main() {
    const uint row = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint base = row * pc.stride;
    // ascending indices per invocation: a strictly larger key is needed to move, so ties keep
    // the lower index
    uint bk = KEY_NONE, bi = ID_NONE;
    const uvec2 span = ban_span(row, pc.ban != 0u);
    for (uint i = tid; i < pc.width; i += nt) {
        const uint k = is_banned(i, span) ? KEY_NONE : logit_key(logits[base + i]);
        if (k > bk) {
            bk = k;
            bi = i;
        }
    }
#if TIER >= 1
    const uint mk = subgroupMax(bk);
    const uint mi = subgroupMin(bk == mk ? bi : ID_NONE);
    if (subgroupElect()) {
        s_key[gl_SubgroupID] = mk;
        s_id[gl_SubgroupID] = mi;
    }
    barrier();
    if (tid == 0u) {
        uint k = s_key[0], id = s_id[0];
        for (uint s = 1u; s < gl_NumSubgroups; s++)
            if (key_before(s_key[s], s_id[s], k, id)) {
                k = s_key[s];
                id = s_id[s];
            }
        ids[row] = id;
    }
#else
    s_key[tid] = bk;
    s_id[tid] = bi;
    barrier();
    for (uint s = nt / 2u; s > 0u; s >>= 1) { // nt is a power of two (vk_ops_sample.c)
        if (tid < s && key_before(s_key[tid + s], s_id[tid + s], s_key[tid], s_id[tid])) {
            s_key[tid] = s_key[tid + s];
            s_id[tid] = s_id[tid + s];
        }
        barrier();
    }
    if (tid == 0u) ids[row] = s_id[0];
#endif
}
