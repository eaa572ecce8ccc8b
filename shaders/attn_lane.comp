// attn_decode.comp's arithmetic, bit for bit, laid out for CPU drivers (lavapipe): one
// invocation per (head, split, row) runs every key of its range in order by itself, so there
// is no shared memory, no barrier and no reduction. lavapipe loads buffer and shared memory one
// lane at a time; attn_decode's 64 invocations each load the tile's scores, factors and slots
// from shared memory for every key (~100x the loads of this layout). Here a lane loads its
// query once and, per key, its K and V rows as 16-byte words (HD / 4 of them) and one block
// table entry; the arrays are indexed by constants only (HD is a specialization constant and
// the loops are unrolled), so they stay in registers. "no barrier": but one, after the
// workgroup copies exp_libm's table to shared memory (attn.glsl EXP2_SHARED).
//
// lavapipe runs both sides of every branch (masked), so there are none in the key loop: the
// accumulator's rescale runs for every key (a factor of 1 leaves F16 values as they are), and
// the value fma is xfma_f16_split (common.glsl), whose exact path and fallbacks are selects.
// The split of the key's weight is made once for its HD products.
//
// Runs: SERIAL rows (any entries) or SPLIT one-token entries, as attn_decode.comp, with the
// same partial records for attn_merge.comp. Invocation g of the grid: head g % n_head, then
// row, then split, so the one-chunk case (padded length < 512) keeps the lanes of its live
// chunk together. Needs HD % 8 == 0 (rows of whole 16-byte words). Tier 0: the caches are
// read as raw words, so one build serves every tier.
//
// Specialization: 0 HD (head_dim), 100 threads.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#define PARAMS_BINDING 0
#include "common.glsl"
#define EXP2_SHARED
#include "attn.glsl"

layout(constant_id = 0) const uint HD = 64;

layout(std430, binding = 1) readonly buffer Q { float q[]; };
layout(std430, binding = 2) readonly buffer KC { uvec4 kc[]; };
layout(std430, binding = 3) readonly buffer VC { uvec4 vc[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(std430, binding = 5) writeonly buffer PART { float part[]; };
layout(push_constant) uniform PC {
    uint row0, n_head, group, hd, n_ctx, kv_dim, stride_q, stride_o, n_splits, split_mode;
    float scale;
    uint n_rows; // rows of the run
} pc;

const uint NP = HD & ~31u; // elements in the 32-lane part of the dot product
const uint HW = HD / 8u;   // 16-byte words per head row

// The 8 halves of a 16-byte word (h2f_int: lavapipe's own conversion is slow).
void halves(uvec4 w, out float h[8]) {
    [[unroll]] for (uint c = 0u; c < 4u; c++) {
        h[2u * c] = h2f_int(w[c]);
        h[2u * c + 1u] = h2f_int(w[c] >> 16);
    }
}

void main() {
    exp2_table_init();
    const uint g = gl_GlobalInvocationID.x, per_split = pc.n_rows * pc.n_head;
    const uint n_split = pc.split_mode != 0u ? pc.n_splits : 1u;
    if (g >= per_split * n_split) return;
    const uint split = g / per_split, rh = g - split * per_split;
    const uint r = rh / pc.n_head, h = rh - r * pc.n_head, t = pc.row0 + r;
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
    const uint pbase = ((entry * pc.n_head + h) * pc.n_splits + split) * (HD + 2u);
    if (j0 >= j1) { // an empty chunk: S = 0 tells the merge to skip it
        if (pc.split_mode != 0u) {
            part[pbase] = NEG_INF;
            part[pbase + 1u] = 0.0;
        }
        return;
    }
    const uint kvw = pc.kv_dim / 8u, kvo = (h / pc.group) * HW;

    float qs[HD];
    [[unroll]] for (uint d = 0u; d < HD; d++) qs[d] = f16r(q[t * pc.stride_q + h * HD + d]);
    float acc[HD];
    [[unroll]] for (uint d = 0u; d < HD; d++) acc[d] = 0.0;
    float M = NEG_INF, S = 0.0;

    for (uint j = j0; j < j1; j++) {
        const uint kb = p_kv_slot(table, j) * kvw + kvo;
        // k . q in attn_decode.comp dot_cpu's order
        float s32[32];
        [[unroll]] for (uint l = 0u; l < 32u; l++) s32[l] = 0.0;
        [[unroll]] for (uint i = 0u; i < NP; i += 8u) {
            float kk[8];
            halves(kc[kb + i / 8u], kk);
            [[unroll]] for (uint c = 0u; c < 8u; c++) {
                // F16 x F16 is exact in F32, so the CPU's fma is this product and one add:
                // no fma emulation (lavapipe's costs ~30 operations)
                precise float p = kk[c] * qs[i + c];
                precise float a = s32[(i + c) % 32u] + p;
                s32[(i + c) % 32u] = a;
            }
        }
        precise float tt[8];
        [[unroll]] for (uint m = 0u; m < 8u; m++)
            tt[m] = (s32[m] + s32[16u + m]) + (s32[8u + m] + s32[24u + m]);
        precise float hi = ((tt[0] + tt[4]) + (tt[1] + tt[5])) + ((tt[2] + tt[6]) + (tt[3] + tt[7]));
        precise float lo = 0.0;
        [[unroll]] for (uint i = NP; i < HD; i += 8u) {
            float kk[8];
            halves(kc[kb + i / 8u], kk);
            [[unroll]] for (uint c = 0u; c < 8u; c++) {
                precise float p = kk[c] * qs[i + c]; // exact: F16 x F16
                float a, e;
                two_sum(hi, p, a, e);
                hi = a;
                lo += e;
            }
        }
        precise float dot = hi + lo;
        precise float s = dot * pc.scale;

        // this key's factors from the running max before it, as attn_decode.comp
        const bool grows = s > M;
        const float ex = exp_libm(grows ? M - s : s - M);
        const float ms = grows ? ex : 1.0, vs = grows ? 1.0 : ex;
        M = grows ? s : M;
        S = xfma(S, ms, vs);
        const uint vb = p_kv_slot(table, j) * kvw + kvo;
        float vh, vl;
        fma_split(vs, 12u, vh, vl);
        [[unroll]] for (uint i = 0u; i < HD; i += 8u) {
            float vv[8];
            halves(vc[vb + i / 8u], vv);
            [[unroll]] for (uint c = 0u; c < 8u; c++) {
                precise float a = acc[i + c] * ms;
                acc[i + c] = f16r(xfma_f16_split(vs, vh, vl, vv[c], f16r(a)));
            }
        }
    }

    if (pc.split_mode != 0u) {
        part[pbase] = M;
        part[pbase + 1u] = S;
        [[unroll]] for (uint d = 0u; d < HD; d++) part[pbase + 2u + d] = acc[d];
        return;
    }
    precise float inv = S == 0.0 ? 0.0 : 1.0 / S;
    [[unroll]] for (uint d = 0u; d < HD; d++) {
        precise float y = acc[d] * inv;
        o[t * pc.stride_o + h * HD + d] = y;
    }
}
