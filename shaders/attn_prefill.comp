// Attention for large batches (n_tok >= 64): the tiled F32 path of src/cpu/cpu_backend.c
// attn_block_large with its kernels' operation order (src/cpu/cpu_vec.c), so each query's
// result has the CPU's bits but for two places: the rescale factor exp(M_old - M_new) is
// libm's expf on the CPU and attn.glsl exp_libm here (equal but for ~3.5e-7 of arguments),
// and the tile sums, added in double on the CPU, are added here as an unevaluated float pair
// (TwoSum), which rounds to the same float unless the exact sum lies within ~2^-47 of a
// rounding midpoint (tier 0 has no float64). fmas are attn.glsl xfma (emulated where the
// device's fma() is not fused).
//
// Per query and tile of 64 keys (from key 0, tiles the query cannot see skipped):
//   kq[j] = sequential fma chain over d of k[j][d] * q[d], times scale; -inf past the query;
//   m_new = max(M, max_j kq[j]); if it grew: acc *= exp(M - m_new), S *= the same;
//   p[j] = cpu_vec_expf(kq[j] - m_new) (vexp);
//   S = float(double(S) + sum of 8-lane groups in hsum8 order);
//   acc[d] = sequential fma chain over j of v[j][d] * p[j], from acc[d].
// One dispatch per entry (a sequence's n_tok queries at positions pos0.., batch rows row0..,
// from the step parameters), one workgroup per (head, block of R queries); the K tile, then
// the V tile, staged in shared memory as packed halves (F16 -> F32 is exact, so staging
// changes nothing), each key's slot from the entry's block table. Invocation j scores key j
// for every row; invocation r < R runs row r's max and sum; invocation i owns output dims i
// and i + 64 of every row. Shared: 29120 bytes (lavapipe has 32 KiB). The caches are read as
// raw 32-bit words, so one build serves every tier.
#version 450
#extension GL_GOOGLE_include_directive : require
#define PARAMS_BINDING 0
#include "common.glsl"
#include "attn.glsl"

#define WG 64u     // invocations = keys per tile (CPU_VEC_TILE)
#define R 16u      // query rows per workgroup
#define HD_MAX 128u
#define NE (HD_MAX / WG)

layout(std430, binding = 1) readonly buffer Q { float q[]; };
layout(std430, binding = 2) readonly buffer KC { uint kc[]; };
layout(std430, binding = 3) readonly buffer VC { uint vc[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(push_constant) uniform PC {
    uint entry, n_head, group, hd, n_ctx, kv_dim, stride_q, stride_o;
    float scale;
} pc;

shared float qsh[R * HD_MAX];
shared uint tile[WG * HD_MAX / 2u];
shared float kq[R * WG];
shared float rm[R], rs[R], rms[R];
shared uint sslot[WG]; // cache slots of the tile's keys

// float(double(S) + sum over 8-lane groups g of double(hsum8(p[g]))), as softmax_tile and
// attn_block_large add them; cpu_vec_hsum8's lane order: ((0+4)+(2+6)) + ((1+5)+(3+7)).
float add_tile_sum(float S, uint r) {
    float hi = 0.0;
    precise float lo = 0.0;
    for (uint g = 0u; g < WG; g += 8u) {
        const uint b = r * WG + g;
        precise float a0 = kq[b] + kq[b + 4u], a1 = kq[b + 1u] + kq[b + 5u];
        precise float a2 = kq[b + 2u] + kq[b + 6u], a3 = kq[b + 3u] + kq[b + 7u];
        precise float hs = (a0 + a2) + (a1 + a3);
        float s, e;
        two_sum(hi, hs, s, e);
        hi = s;
        lo += e;
    }
    float s, e;
    two_sum(S, hi, s, e);
    precise float r0 = e + lo;
    precise float res = s + r0;
    return res;
}

void main() {
    const uint h = gl_WorkGroupID.x, t0 = gl_WorkGroupID.y * R, tid = gl_LocalInvocationID.x;
    const uint hd = pc.hd, hp = hd / 2u, kvp = pc.kv_dim / 2u, kvo = (h / pc.group) * hp;
    const uint n_tok = p_seq_ntok(pc.entry), pos0 = p_seq_pos0(pc.entry);
    const uint row0 = p_seq_row0(pc.entry), table = p_seq_table(pc.entry);
    if (t0 >= n_tok) return;
    const uint nq = min(R, n_tok - t0);
    for (uint x = tid; x < R * hd; x += WG) {
        const uint r = x / hd, d = x % hd;
        qsh[r * HD_MAX + d] = r < nq ? q[(row0 + t0 + r) * pc.stride_q + h * hd + d] : 0.0;
    }
    if (tid < R) {
        rm[tid] = NEG_INF;
        rs[tid] = 0.0;
    }
    float acc[R][NE];
    for (uint r = 0u; r < R; r++)
        for (uint e = 0u; e < NE; e++) acc[r][e] = 0.0;
    const uint kv_end = min(pos0 + t0 + nq, pc.n_ctx);
    for (uint j0 = 0u; j0 < kv_end; j0 += WG) {
        const uint cnt = min(WG, kv_end - j0);
        barrier(); // the last tile's V reads are done
        if (tid < cnt) sslot[tid] = p_kv_slot(table, j0 + tid);
        barrier();
        for (uint x = tid; x < WG * hp; x += WG) {
            const uint j = x / hp, i = x % hp;
            tile[j * hp + i] = j < cnt ? kc[sslot[j] * kvp + kvo + i] : 0u;
        }
        barrier();
        for (uint r = 0u; r < nq; r++) { // kq_tile: one key per invocation
            const uint n_kv = min(pos0 + t0 + r + 1u, pc.n_ctx);
            const uint vis = n_kv > j0 ? min(n_kv - j0, WG) : 0u;
            float s = NEG_INF;
            if (tid < vis) {
                float a = 0.0;
                for (uint i = 0u; i < hp; i++) {
                    const vec2 kk = unpackHalf2x16(tile[tid * hp + i]);
                    a = xfma(kk.x, qsh[r * HD_MAX + 2u * i], a);
                    a = xfma(kk.y, qsh[r * HD_MAX + 2u * i + 1u], a);
                }
                s = a * pc.scale;
            }
            kq[r * WG + tid] = s;
        }
        barrier();
        if (tid < nq) { // row tid: the new max and the rescale factor
            const uint n_kv = min(pos0 + t0 + tid + 1u, pc.n_ctx);
            float ms = 1.0;
            if (n_kv > j0) {
                float tmax = NEG_INF;
                for (uint j = 0u; j < WG; j++) {
                    const float x = kq[tid * WG + j];
                    tmax = x > tmax ? x : tmax;
                }
                const float M = rm[tid], m_new = max(M, tmax);
                if (m_new > M) {
                    ms = exp_libm(M - m_new);
                    precise float sm = rs[tid] * ms;
                    rs[tid] = sm;
                }
                rm[tid] = m_new;
            }
            rms[tid] = ms;
        } else if (tid < R) {
            rms[tid] = 1.0;
        }
        for (uint x = tid; x < WG * hp; x += WG) { // the V tile over the K tile
            const uint j = x / hp, i = x % hp;
            tile[j * hp + i] = j < cnt ? vc[sslot[j] * kvp + kvo + i] : 0u;
        }
        barrier();
        for (uint r = 0u; r < nq; r++) { // softmax_tile's exponentials
            const float x = kq[r * WG + tid];
            kq[r * WG + tid] = x == NEG_INF ? 0.0 : vexp(x - rm[r]);
        }
        barrier();
        if (tid < nq && pos0 + t0 + tid + 1u > j0) rs[tid] = add_tile_sum(rs[tid], tid);
        // rescale, then v_accum: keys outer, rows inner (each (row, dim) is still one chain
        // over the keys in order); constant row bounds keep acc[][] in registers
        uint vis[R];
        for (uint r = 0u; r < R; r++) {
            const uint n_kv = min(pos0 + t0 + r + 1u, pc.n_ctx);
            vis[r] = r < nq && n_kv > j0 ? min(n_kv - j0, WG) : 0u;
        }
        const uint jmax = min(kv_end - j0, WG); // the last row sees every tile
        for (uint e = 0u; e < NE; e++) {
            const uint d = tid + e * WG;
            if (d >= hd) break;
            for (uint r = 0u; r < R; r++) {
                precise float a0 = acc[r][e] * rms[r];
                acc[r][e] = a0;
            }
            for (uint j = 0u; j < jmax; j++) {
                const vec2 vv = unpackHalf2x16(tile[j * hp + d / 2u]);
                const float v = (d & 1u) != 0u ? vv.y : vv.x;
                for (uint r = 0u; r < R; r++)
                    if (j < vis[r]) acc[r][e] = xfma(v, kq[r * WG + j], acc[r][e]);
            }
        }
    }
    barrier();
    for (uint r = 0u; r < R; r++) {
        const float S = rs[r];
        precise float inv = S == 0.0 ? 0.0 : 1.0 / S;
        for (uint e = 0u; e < NE; e++) {
            const uint d = tid + e * WG;
            precise float y = acc[r][e] * inv;
            if (r < nq && d < hd) o[(row0 + t0 + r) * pc.stride_o + h * hd + d] = y;
        }
    }
}
