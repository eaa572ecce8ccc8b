// Attention for small batches (n_tok < 64): llama.cpp's CPU flash attention with an F16
// accumulator, as src/cpu/cpu_backend.c attn_chunk_f16 does it, so greedy tokens agree:
// q rounded to F16; per key in order, the running max M, ms = exp(M_old - M) when it grows
// (the accumulator rescaled and rounded to F16), else vs = exp(s - M); acc = f16(acc + v * vs)
// (fused, as ggml's AVX2 mad_f16); S = fma(S, ms, vs). exp is libm's expf on the CPU and
// attn.glsl exp_libm here (glibc's algorithm in float pairs: the same float but for ~3.5e-7
// of arguments).
//
// One workgroup per (head, split, row) (x, y, z) of a run of batch rows row0.. (SERIAL: rows
// of one or more entries; SPLIT: each row a one-token entry). A row attends over positions
// [0, its position] of its own sequence, each key and value read from the slot its entry's
// block table gives (step parameters). A tile of WG keys is scored in parallel (one key per
// invocation, in the CPU's summation order), then each invocation derives its key's (ms, vs)
// from the scores before it, and finally every invocation runs the sequential per-key update
// for the accumulator elements it owns.
//
// split_mode (SPLIT, a single query): the keys of the padded cache length split into
// n_splits chunks exactly as attn_head_small does; each chunk writes (M, S, acc) to the
// entry's records in part[] and attn_merge.comp combines them. Below a padded length of 512
// chunk 0 takes all keys and the other chunks are empty. Everything depends on the parameter
// buffer only, not on the grid.
#version 450
#extension GL_GOOGLE_include_directive : require
#define PARAMS_BINDING 0
#include "common.glsl"
#include "attn.glsl"

#define WG 64u
#define HD_MAX 256u
#define NE (HD_MAX / WG)

layout(std430, binding = 1) readonly buffer Q { float q[]; };
layout(std430, binding = 2) readonly buffer KC { KV_T kc[]; };
layout(std430, binding = 3) readonly buffer VC { KV_T vc[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(std430, binding = 5) writeonly buffer PART { float part[]; };
layout(push_constant) uniform PC {
    uint row0, n_head, group, hd, n_ctx, kv_dim, stride_q, stride_o, n_splits, split_mode;
    float scale;
} pc;

shared float qs[HD_MAX];
shared float sc[WG], sms[WG], svs[WG];
shared uint sslot[WG]; // cache slots of the tile's keys
shared float s_sum;

// k . q in the order of the CPU path's AVX2 dot_f16 (src/cpu/cpu_kernels_avx2.c, ggml's):
// 32 lanes, lane l an fma chain over elements l, l + 32, ...; reduced as (s0 + s2) + (s1 + s3)
// over the four 8-lane vectors, then halves, then two horizontal adds; a tail past the last
// multiple of 32 added in double (here a float pair: exact products, TwoSum).
float dot_cpu(uint kb, uint hd) {
    float s[32];
    for (uint l = 0u; l < 32u; l++) s[l] = 0.0;
    const uint np = hd & ~31u;
    for (uint i = 0u; i < np; i += 32u)
        for (uint l = 0u; l < 32u; l += 2u) {
            const vec2 kk = kv_get(kc[kb + (i + l) / 2u]);
            s[l] = xfma(kk.x, qs[i + l], s[l]);
            s[l + 1u] = xfma(kk.y, qs[i + l + 1u], s[l + 1u]);
        }
    precise float t[8];
    for (uint m = 0u; m < 8u; m++) t[m] = (s[m] + s[16u + m]) + (s[8u + m] + s[24u + m]);
    precise float hi = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    precise float lo = 0.0;
    for (uint i = np; i < hd; i += 2u) {
        const vec2 kk = kv_get(kc[kb + i / 2u]);
        precise float p0 = kk.x * qs[i], p1 = kk.y * qs[i + 1u]; // exact: F16 x F16
        float a, e;
        two_sum(hi, p0, a, e);
        hi = a;
        lo += e;
        two_sum(hi, p1, a, e);
        hi = a;
        lo += e;
    }
    precise float r = hi + lo;
    return r;
}

void main() {
    const uint h = gl_WorkGroupID.x, split = gl_WorkGroupID.y, t = pc.row0 + gl_WorkGroupID.z;
    const uint tid = gl_LocalInvocationID.x;
    const uint hd = pc.hd, hp = hd / 2u, kvp = pc.kv_dim / 2u, kvo = (h / pc.group) * hp;
    const uint entry = p_entry(t), table = p_seq_table(entry);
    const uint n_kv = min(p_pos(t) + 1u, pc.n_ctx);
    uint j0 = 0u, j1 = n_kv;
    if (pc.split_mode != 0u) {
        const uint padded = padded_kv(pc.n_ctx, n_kv);
        if (padded >= 512u) {
            const uint chunk = (padded + pc.n_splits - 1u) / pc.n_splits;
            j0 = split * chunk;
            j1 = min(j0 + chunk, n_kv);
        } else if (split > 0u) {
            j1 = 0u;
        }
    }
    const uint pbase = ((entry * pc.n_head + h) * pc.n_splits + split) * (hd + 2u);
    if (j0 >= j1) { // an empty chunk: S = 0 tells the merge to skip it
        if (pc.split_mode != 0u && tid == 0u) {
            part[pbase] = NEG_INF;
            part[pbase + 1u] = 0.0;
        }
        return;
    }
    for (uint d = tid; d < hd; d += WG) qs[d] = f16r(q[t * pc.stride_q + h * hd + d]);
    barrier();

    float acc[NE];
    for (uint e = 0u; e < NE; e++) acc[e] = 0.0;
    float M = NEG_INF;
    float S = 0.0;
    for (uint jt = j0; jt < j1; jt += WG) {
        const uint cnt = min(WG, j1 - jt);
        if (tid < cnt) {
            const uint slot = p_kv_slot(table, jt + tid);
            sslot[tid] = slot;
            precise float s = dot_cpu(slot * kvp + kvo, hd) * pc.scale;
            sc[tid] = s;
        }
        barrier();
        if (tid < cnt) { // this key's factors, from the running max before it
            float m = M;
            for (uint j = 0u; j < tid; j++) m = sc[j] > m ? sc[j] : m;
            const float s = sc[tid];
            sms[tid] = s > m ? exp_libm(m - s) : 1.0;
            svs[tid] = s > m ? 1.0 : exp_libm(s - m);
        }
        barrier();
        for (uint j = 0u; j < cnt; j++) {
            const float ms = sms[j], vs = svs[j];
            M = sc[j] > M ? sc[j] : M;
            if (tid == 0u) S = xfma(S, ms, vs); // one chain, shared at the end
            const uint vb = sslot[j] * kvp + kvo;
            for (uint e = 0u; e < NE; e++) {
                const uint i = tid + e * WG;
                if (i >= hd) break;
                const vec2 vv = kv_get(vc[vb + i / 2u]);
                if (ms != 1.0) {
                    precise float a = acc[e] * ms;
                    acc[e] = f16r(a);
                }
                acc[e] = f16r(xfma((i & 1u) != 0u ? vv.y : vv.x, vs, acc[e]));
            }
        }
        barrier();
    }
    if (tid == 0u) s_sum = S;
    barrier();
    S = s_sum;
    if (pc.split_mode != 0u) {
        if (tid == 0u) {
            part[pbase] = M;
            part[pbase + 1u] = S;
        }
        for (uint e = 0u; e < NE; e++) {
            const uint i = tid + e * WG;
            if (i < hd) part[pbase + 2u + i] = acc[e];
        }
        return;
    }
    precise float inv = S == 0.0 ? 0.0 : 1.0 / S;
    for (uint e = 0u; e < NE; e++) {
        const uint i = tid + e * WG;
        precise float y = acc[e] * inv;
        if (i < hd) o[t * pc.stride_o + h * hd + i] = y;
    }
}
