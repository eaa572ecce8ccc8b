// K and V rows into a Q8_0 KV cache: the rows were quantized by quantize.comp (ACT_Q8: the CPU
// path's Q8_0 codes and scale, in the activation layout of quant.glsl), and here each pair of
// blocks is repacked into the cache's GGUF layout (34-byte blocks: F16 scale, 32 codes) at the
// row's slot (step parameters). A pair is 68 bytes, 17 whole words, so no two invocations
// share a word; the host requires the KV width to be a multiple of 64. One invocation per
// (block pair, K or V) of a row: x pairs and kinds, y rows.
#version 450
#extension GL_GOOGLE_include_directive : require
#define PARAMS_BINDING 0
#include "common.glsl"

layout(std430, binding = 1) readonly buffer XK { uint xk[]; };
layout(std430, binding = 2) readonly buffer XV { uint xv[]; };
layout(std430, binding = 3) writeonly buffer KC { uint kc[]; };
layout(std430, binding = 4) writeonly buffer VC { uint vc[]; };
layout(push_constant) uniform PC {
    uint n_tok, n_pairs, n_ctx, n_slots, x_row_words;
} pc;

const uint XQ8 = 12u; // words of a quantize.comp Q8 block: 8 of codes, d as a float, s, sum

uint scale_bits(float d) { return packHalf2x16(vec2(d, 0.0)) & 0xffffu; } // d is an F16 value

void main() {
    const uint t = gl_GlobalInvocationID.y, i = gl_GlobalInvocationID.x;
    if (t >= pc.n_tok || i >= 2u * pc.n_pairs) return;
    const uint pos = p_pos(t), slot = p_slot(t);
    if (pos >= pc.n_ctx || slot >= pc.n_slots) return;
    const bool is_v = i >= pc.n_pairs;
    const uint pr = is_v ? i - pc.n_pairs : i;
    const uint xo = t * pc.x_row_words + 2u * pr * XQ8;
    uint a[8], b[8], w[17];
    for (uint k = 0u; k < 8u; k++) {
        a[k] = is_v ? xv[xo + k] : xk[xo + k];
        b[k] = is_v ? xv[xo + XQ8 + k] : xk[xo + XQ8 + k];
    }
    const uint da = scale_bits(uintBitsToFloat(is_v ? xv[xo + 8u] : xk[xo + 8u]));
    const uint db = scale_bits(uintBitsToFloat(is_v ? xv[xo + XQ8 + 8u] : xk[xo + XQ8 + 8u]));
    // bytes: da (2), a's 32 codes, db (2), b's 32 codes
    w[0] = da | (a[0] << 16);
    for (uint k = 1u; k < 8u; k++) w[k] = (a[k - 1u] >> 16) | (a[k] << 16);
    w[8] = (a[7] >> 16) | (db << 16);
    for (uint k = 0u; k < 8u; k++) w[9u + k] = b[k];
    const uint o = slot * pc.n_pairs * 17u + pr * 17u;
    for (uint k = 0u; k < 17u; k++) {
        if (is_v) vc[o + k] = w[k];
        else kc[o + k] = w[k];
    }
}
