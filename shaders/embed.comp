// Embedding lookup: dst[t] = row tokens[t] of the weight, dequantized with src/core's formulas
// (quant.c dequant_*: the same products in the same order, no fused multiply-add), so the
// result is the CPU's bit for bit. One invocation per 32 elements (per element for the float
// formats), one dispatch per weight part: a part writes only the tokens whose rows it holds;
// ids outside [0, n_out) get a zero row from the dispatch of part 0.
//
// Defines: TIER, WT_<type>. Bindings: 0 weight part, 1 step parameters, 2 dst.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#define PARAMS_BINDING 1
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Wb { uint w_data[]; };
layout(std430, binding = 2) writeonly buffer D { float dst[]; };
layout(push_constant) uniform PC {
    uint row0, n_rows; // rows of this part
    uint n_out, n_in;  // of the whole matrix
    uint w_row_bytes, dst_stride;
    uint first;        // part 0: also writes the zero rows
} pc;

#define QW(i) w_data[i]
#include "quant.glsl"

void main() {
    const uint t = gl_WorkGroupID.y, u = gl_GlobalInvocationID.x;
    const int id = p_token(t);
    const uint per = QK == 1 ? 1u : 32u;
    if (u * per >= pc.n_in) return;
    const uint o = t * pc.dst_stride + u * per;
    if (id < 0 || uint(id) >= pc.n_out) {
        if (pc.first != 0u)
            for (uint j = 0u; j < per; j++) dst[o + j] = 0.0;
        return;
    }
    if (uint(id) < pc.row0 || uint(id) - pc.row0 >= pc.n_rows) return;
    const uint row = (uint(id) - pc.row0) * pc.w_row_bytes;
#if defined(Q_FLOAT)
    dst[o] = q_float(row, u);
#else
    const uint b = u / (QK / 32), s = u % (QK / 32), bo = row + q_bo(b);
    uint c[8];
#if defined(Q_LEGACY)
    float d, m;
    q_block(bo, c, d, m);
    for (uint w = 0u; w < 8u; w++)
        for (uint j = 0u; j < 4u; j++) {
#if defined(Q_HAS_MIN)
            precise float v = float(q_code(c[w], j) + Q_OFF) * d + m;
#else
            precise float v = float(q_code(c[w], j) + Q_OFF) * d;
#endif
            dst[o + 4u * w + j] = v;
        }
#else
    q_codes32(bo, s, c);
    const float d = q_d(bo), dmin = q_dmin(bo);
    for (uint w = 0u; w < 8u; w++) {
        const uint g = Q_GROUP == 16 ? 2u * s + w / 4u : s;
        precise float dl = d * float(q_sc(bo, g)), ml = dmin * float(q_mn(bo, g));
        for (uint j = 0u; j < 4u; j++) {
            precise float v = dl * float(q_code(c[w], j) + Q_OFF) - ml;
            dst[o + 4u * w + j] = v;
        }
    }
#endif
#endif
}
