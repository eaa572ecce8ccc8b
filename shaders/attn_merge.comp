// Merge of attn_decode.comp's split-K partials for a single query (src/cpu/cpu_backend.c
// attn_head_small): chunks in order, skipping empty ones, in F32 with the CPU's fma
// placement; below a padded length of 512 the single chunk's result is scaled as the
// unsplit path does. A run of one-token entries (batch rows row0..); a row's records are its
// entry's. GPUs (LANE false): one workgroup per (head, row), an element a thread. CPU drivers
// (LANE true, as attn_lane.comp): one invocation per (head, row) takes all its elements, in
// workgroups of a few, since lavapipe's cost per workgroup is high (a 16-sequence step took
// ~0.7 ms a layer in 144 workgroups of 64); the same arithmetic per element.
//
// Specialization: 0 LANE, 100 threads.
#version 450
#extension GL_GOOGLE_include_directive : require
#define PARAMS_BINDING 0
#include "common.glsl"
#include "attn.glsl"

layout(std430, binding = 1) readonly buffer PART { float part[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform PC {
    uint row0, n_head, hd, n_ctx, n_splits, stride_o;
    uint n_rows; // rows of the run (LANE)
} pc;

layout(constant_id = 0) const bool LANE = false;

void main() {
    const uint g = gl_GlobalInvocationID.x;
    if (LANE && g >= pc.n_rows * pc.n_head) return;
    const uint h = LANE ? g % pc.n_head : gl_WorkGroupID.x;
    const uint tid = LANE ? 0u : gl_LocalInvocationID.x, nt = LANE ? 1u : gl_WorkGroupSize.x;
    const uint t = pc.row0 + (LANE ? g / pc.n_head : gl_WorkGroupID.y);
    const uint hd = pc.hd, n_kv = min(p_pos(t) + 1u, pc.n_ctx);
    const uint b0 = (p_entry(t) * pc.n_head + h) * pc.n_splits * (hd + 2u);
    const uint ob = t * pc.stride_o + h * hd;
    if (padded_kv(pc.n_ctx, n_kv) < 512u) {
        const float S = part[b0 + 1u];
        precise float inv = S == 0.0 ? 0.0 : 1.0 / S;
        for (uint i = tid; i < hd; i += nt) {
            precise float y = part[b0 + 2u + i] * inv;
            o[ob + i] = y;
        }
        return;
    }
    for (uint i = tid; i < hd; i += nt) {
        float Mf = NEG_INF;
        float Sf = 0.0, vsum = 0.0;
        for (uint s = 0u; s < pc.n_splits; s++) {
            const uint b = b0 + s * (hd + 2u);
            const float M = part[b], S = part[b + 1u];
            if (S == 0.0) continue;
            const float m_new = max(Mf, M);
            const float so = exp_libm(Mf - m_new), sn = exp_libm(M - m_new);
            precise float an = part[b + 2u + i] * sn, sm = S * sn;
            vsum = xfma(vsum, so, an);
            Sf = xfma(Sf, so, sm);
            Mf = m_new;
        }
        precise float inv = Sf != 0.0 ? 1.0 / Sf : 1.0;
        precise float y = vsum * inv;
        o[ob + i] = y;
    }
}
