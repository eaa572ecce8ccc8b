// RoPE "normal" mode on the q and k rows of a batch, in place, then k and v rows into the F16
// cache (src/cpu/cpu_backend.c op_rope_store): each row at its own position, stored in its
// own slot of the paged cache (both from the step parameters, where the host resolved the
// slot through the row's block table). The angle's cos and sin come from a host-built table
// (rope_cs[pos][n_rot]: cos, sin per pair) computed with the CPU path's formula, so only the
// rotation itself runs here: with the CPU's fma placement, which is llama.cpp build's
// contraction. One invocation per pair of a q, k or v row; workgroups (x: pairs, y: row).
#version 450
#extension GL_GOOGLE_include_directive : require
#define PARAMS_BINDING 0
#include "common.glsl"
#include "attn.glsl"

layout(std430, binding = 1) readonly buffer CS { float cs[]; };
layout(std430, binding = 2) buffer Q { float q[]; };
layout(std430, binding = 3) buffer K { float k[]; };
layout(std430, binding = 4) readonly buffer V { float v[]; };
layout(std430, binding = 5) writeonly buffer KC { KV_T kc[]; };
layout(std430, binding = 6) writeonly buffer VC { KV_T vc[]; };
layout(push_constant) uniform PC {
    uint n_tok, n_head, n_head_kv, hd, n_rot, n_ctx, n_slots, stride_q, stride_k, stride_v;
    uint store; // 0: RoPE only (a Q8_0 cache is written by kv_pack_q8.comp)
} pc;

vec2 rotate(vec2 x, uint pos, uint i) {
    if (i >= pc.n_rot) return x;
    const float c = cs[pos * pc.n_rot + i], s = cs[pos * pc.n_rot + i + 1u];
    precise float m0 = x.y * s, m1 = x.y * c;
    return vec2(xfma(x.x, c, -m0), xfma(x.x, s, m1));
}

void main() {
    const uint t = gl_WorkGroupID.y, p = gl_GlobalInvocationID.x;
    if (t >= pc.n_tok) return;
    const uint pos = p_pos(t), slot = p_slot(t);
    if (pos >= pc.n_ctx || slot >= pc.n_slots) return;
    const uint hp = pc.hd / 2u, qp = pc.n_head * hp, kvp = pc.n_head_kv * hp;
    if (p < qp) {
        const uint o = t * pc.stride_q + 2u * p;
        const vec2 y = rotate(vec2(q[o], q[o + 1u]), pos, 2u * (p % hp));
        q[o] = y.x;
        q[o + 1u] = y.y;
    } else if (p < qp + kvp) {
        const uint pk = p - qp, o = t * pc.stride_k + 2u * pk;
        const vec2 y = rotate(vec2(k[o], k[o + 1u]), pos, 2u * (pk % hp));
        k[o] = y.x;
        k[o + 1u] = y.y;
        if (pc.store != 0u) kc[slot * kvp + pk] = kv_put(y);
    } else if (p < qp + 2u * kvp && pc.store != 0u) {
        const uint pv = p - qp - kvp, o = t * pc.stride_v + 2u * pv;
        vc[slot * kvp + pv] = kv_put(vec2(v[o], v[o + 1u]));
    }
}
