// Attention over a Q8_0 KV cache (src/cpu/cpu_backend.c attn_head_q8, bit for bit): per key,
// the K row dequantized to F32 (code * scale, exact), s = sum of k_i * q_i in order (each
// product and sum rounded: no fma), scaled; the online softmax with libm's exp (attn.glsl
// exp_libm); the V sum in F32, acc_i += vs * v_i. Every row of the batch, whatever its
// attention mode: the Q8_0 path has one arithmetic for all of them.
//
// One invocation per (head, row), every key in order (as attn_lane.comp: no shared memory);
// on GPUs this leaves most lanes of a workgroup to few rows, a price the Q8_0 cache pays for
// its memory. The cache rows are 34-byte blocks; HD % 64 == 0 makes each head's blocks whole
// words (17 per pair of blocks).
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
layout(std430, binding = 2) readonly buffer KC { uint kc[]; };
layout(std430, binding = 3) readonly buffer VC { uint vc[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(push_constant) uniform PC {
    uint n_rows, n_head, group, n_ctx, kv_row_words, stride_q, stride_o;
    float scale;
} pc;

const uint NPR = HD / 64u; // block pairs per head

// The HD values of a head's row at word offset wo: dequantized codes.
void row_f32(bool v, uint wo, out float x[HD]) {
    [[unroll]] for (uint p = 0u; p < NPR; p++) {
        uint w[17];
        [[unroll]] for (uint k = 0u; k < 17u; k++) w[k] = v ? vc[wo + 17u * p + k] : kc[wo + 17u * p + k];
        const float da = unpackHalf2x16(w[0] & 0xffffu).x, db = unpackHalf2x16(w[8] >> 16).x;
        [[unroll]] for (uint i = 0u; i < 32u; i++) {
            const uint ba = 2u + i, bb = 36u + i; // byte offsets in the pair
            const int ca = bitfieldExtract(int(w[ba / 4u]), int(8u * (ba % 4u)), 8);
            const int cb = bitfieldExtract(int(w[bb / 4u]), int(8u * (bb % 4u)), 8);
            precise float xa = float(ca) * da, xb = float(cb) * db; // exact
            x[64u * p + i] = xa;
            x[64u * p + 32u + i] = xb;
        }
    }
}

void main() {
    exp2_table_init();
    const uint g = gl_GlobalInvocationID.x;
    if (g >= pc.n_rows * pc.n_head) return;
    const uint t = g / pc.n_head, h = g - t * pc.n_head;
    const uint table = p_seq_table(p_entry(t));
    const uint n_kv = min(p_pos(t) + 1u, pc.n_ctx);
    const uint kvo = (h / pc.group) * NPR * 17u;

    float qv[HD], acc[HD];
    [[unroll]] for (uint d = 0u; d < HD; d++) {
        qv[d] = q[t * pc.stride_q + h * HD + d];
        acc[d] = 0.0;
    }
    float M = NEG_INF, S = 0.0;
    for (uint j = 0u; j < n_kv; j++) {
        const uint wo = p_kv_slot(table, j) * pc.kv_row_words + kvo;
        float kr[HD];
        row_f32(false, wo, kr);
        float s = 0.0;
        [[unroll]] for (uint d = 0u; d < HD; d++) {
            precise float p = kr[d] * qv[d];
            precise float a = s + p;
            s = a;
        }
        precise float ss = s * pc.scale;
        float ms = 1.0, vs = 1.0;
        if (ss > M) {
            ms = exp_libm(M - ss);
            M = ss;
            [[unroll]] for (uint d = 0u; d < HD; d++) {
                precise float a = acc[d] * ms;
                acc[d] = a;
            }
        } else {
            vs = exp_libm(ss - M);
        }
        float vr[HD];
        row_f32(true, wo, vr);
        [[unroll]] for (uint d = 0u; d < HD; d++) {
            precise float p = vs * vr[d];
            precise float a = acc[d] + p;
            acc[d] = a;
        }
        precise float sm = S * ms;
        precise float sn = sm + vs;
        S = sn;
    }
    precise float inv = S == 0.0 ? 0.0 : 1.0 / S;
    [[unroll]] for (uint d = 0u; d < HD; d++) {
        precise float y = acc[d] * inv;
        o[t * pc.stride_o + h * HD + d] = y;
    }
}
