// Matrix-vector products for decode, and prefill on CPU drivers: y[t][r] (+)= w[r] . x[t],
// NT (1..16) tokens per tile (workgroup z), NR rows, each weight block read once for all NT
// tokens. The 32-element formats (Q4_0 .. Q8_0) give the CPU path's bits: they sum in its
// order (main below); so do the packed 2:4 formats (S24_Q4, S24_Q8), whose spec is that order
// over halves of their blocks (quant.glsl Q_S24). The K and float formats: a thread takes
// whole blocks (super-blocks for the K formats), so each block's integer dot product is exact
// and its float combination is src/core's (quant.glsl q_kterm); only the order of the float
// sum over blocks differs.
//
// Two layouts (LANE_ROWS, from vk_mm_tuning):
//  - GPUs: a workgroup's threads split the blocks of its NR rows, then their partial sums are
//    added (subgroupAdd from tier 1, a shared-memory tree at tier 0);
//  - CPU drivers (lavapipe): each thread its own NR rows over all blocks, no reduction and no
//    barrier. lavapipe (Mesa 22) loads buffer and shared memory one lane at a time (~20
//    cycles per 32-bit word and lane) and keeps run-time-indexed local arrays in memory too:
//    this layout loads each weight word once and each activation word once per NR rows, and
//    the unrolled inner loops keep every array in registers.
//
// Defines: TIER, WT_<type>. Specialization: 0 NT, 1 NR, 2 LANE_ROWS, 100 threads (a power of
// two). Bindings: 0 weight part (words), 1 activations (quant.glsl layout), 2 y.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(constant_id = 0) const uint NT = 1;
layout(constant_id = 1) const uint NR = 1;
layout(constant_id = 2) const bool LANE_ROWS = false;

layout(std430, binding = 0) readonly buffer Wb { uint w_data[]; };
layout(std430, binding = 1) readonly buffer Xb { uint xq[]; };
layout(std430, binding = 2) buffer Yb { float y[]; };
layout(push_constant) uniform PC {
    uint n_rows;      // rows of this part
    uint y_row0;      // its first row in y
    uint nb;          // blocks per row (elements for the float formats)
    uint w_row_bytes;
    uint x_row_words;
    uint y_stride;    // floats between rows of y
    uint accumulate;
    uint x0, y0;      // word offset of the first token's activations, float offset of its y row
    uint n_tok;       // tokens from x0 / y0: workgroup z takes NT of them, the last tile fewer
} pc;

#define QW(i) w_data[i]
#include "quant.glsl"

#define WG gl_WorkGroupSize.x
shared float red[NR * NT * WG];

float xf(uint i) { return uintBitsToFloat(xq[i]); }

// A workgroup's tile: its first row (wg_rows rows a workgroup) and, from workgroup z, its
// tokens' first activation word and y float, their count, and the offset of the last one
// (tokens past nt read the last one's).
struct Tile {
    uint wg0, x0, y0, nt, xt_last;
};
Tile tile_of(uint wg_rows) {
    Tile t;
    t.wg0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * wg_rows;
    t.x0 = pc.x0 + gl_WorkGroupID.z * NT * pc.x_row_words;
    t.y0 = pc.y0 + gl_WorkGroupID.z * NT * pc.y_stride;
    t.nt = min(NT, pc.n_tok - gl_WorkGroupID.z * NT);
    t.xt_last = (t.nt - 1u) * pc.x_row_words;
    return t;
}

#if defined(Q_LEGACY)
// The 32-element formats sum in the CPU path's order (src/cpu/cpu_matmul_avx2.c, which is
// llama.cpp's AVX2 order), so the outputs are its bits: per output 8 lane sums, lane l over
// elements 4l .. 4l + 3 of every block, each a fused multiply-add chain over the blocks in
// order, acc_l = fma(d_w * d_x, isum_l, acc_l) (isum_l exact); then
// ((acc_0 + acc_4) + (acc_2 + acc_6)) + ((acc_1 + acc_5) + (acc_3 + acc_7)), plus for Q4_1 and
// Q5_1 the fused chain of m_w * s_x over the blocks. LANE_ROWS: a thread takes all 8 lanes of
// its NR rows; otherwise 8 neighbouring threads take one lane each of the same NR rows and
// lane 0 adds the 8 sums from shared memory (WG >= 8, checked by vk_mm_set_tuning).
const uint LPT = LANE_ROWS ? 8u : 1u; // lanes per thread

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const Tile tl = tile_of(LANE_ROWS ? NR * WG : NR * (WG / 8u));
    if (tl.wg0 >= pc.n_rows) return; // whole workgroup
    const uint r0 = tl.wg0 + (LANE_ROWS ? tid : tid / 8u) * NR; // this thread's first row
    const uint lane = LANE_ROWS ? 0u : tid % 8u;                 // its first lane
    const uint x0 = tl.x0, y0 = tl.y0, nt = tl.nt, xt_last = tl.xt_last;

    uint bo_row[NR]; // rows past the end repeat the last one; their sums are not stored
    [[unroll]] for (uint r = 0u; r < NR; r++)
        bo_row[r] = min(r0 + r, pc.n_rows - 1u) * pc.w_row_bytes;
    float acc[NR * NT * LPT], msum[NR * NT];
    [[unroll]] for (uint i = 0u; i < NR * NT * LPT; i++) acc[i] = 0.0;
    [[unroll]] for (uint i = 0u; i < NR * NT; i++) msum[i] = 0.0;

#if defined(Q_S24)
    // LANE_ROWS: each row's 64-column block, read at its first half and kept for its second
    // (nb is even): half the loads of reading each half on its own
    uint kw[NR * Q_WORDS];
#endif
    for (uint b = 0u; b < pc.nb; b++) {
        uint cw[NR * LPT];
        float dw[NR], mw[NR];
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            const uint bo = bo_row[r] + q_bo(b);
            if (LANE_ROWS) {
                uint c[8];
#if defined(Q_S24)
                uint k[Q_WORDS];
                if ((b & 1u) == 0u) {
                    q_words(bo, k);
                    [[unroll]] for (uint j = 0u; j < Q_WORDS; j++) kw[r * Q_WORDS + j] = k[j];
                } else {
                    [[unroll]] for (uint j = 0u; j < Q_WORDS; j++) k[j] = kw[r * Q_WORDS + j];
                }
                q_s24_half(k, b & 1u, c, dw[r]);
                mw[r] = 0.0;
#else
                q_block(bo, c, dw[r], mw[r]);
#endif
                [[unroll]] for (uint k = 0u; k < LPT; k++) cw[r * LPT + k] = q_signed(c[k]);
            } else {
                cw[r] = q_signed(q_lane(bo, lane, dw[r], mw[r]));
            }
        }
        [[unroll]] for (uint t = 0u; t < NT; t++) {
            const uint xo = x0 + min(t * pc.x_row_words, xt_last) + b * XQ8_WORDS;
            uint a[LPT];
            [[unroll]] for (uint k = 0u; k < LPT; k++) a[k] = xq[xo + lane + k];
#if defined(Q_DOT_SWAR)
            // two products per 32-bit multiply (quant.glsl Q_DOT_SWAR): the activation bytes
            // biased to unsigned (x + 128), even and odd bytes in swapped 16-bit halves
            uint ae[LPT], ao[LPT];
            [[unroll]] for (uint k = 0u; k < LPT; k++) {
                const uint b = a[k] ^ 0x80808080u;
                const uint e = b & 0x00ff00ffu, o = (b >> 8) & 0x00ff00ffu;
                ae[k] = (e >> 16) | (e << 16);
                ao[k] = (o >> 16) | (o << 16);
            }
#else
            // signed codes (Q4_0, Q5_0, Q8_0) on CPU drivers: two products per 32-bit
            // multiply (below), the activations as x2 + 65536 x0 and x3 + 65536 x1
            int be[LPT], bd[LPT];
            [[unroll]] for (uint k = 0u; k < LPT; k++) {
                be[k] = (int(a[k] << 8u) >> 24) + ((int(a[k] << 24u) >> 24) << 16);
                bd[k] = (int(a[k]) >> 24) + ((int(a[k] << 16u) >> 24) << 16);
            }
#endif
            const float dx = xf(xo + 8u), sx = xf(xo + 9u);
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                precise float dd = dw[r] * dx;
                const uint i = r * NT + t;
#if defined(Q_ISUM_SMALL)
                // dd (two fp16 significands: at most 22 bits) in an 11-bit head and the rest:
                // each times a lane sum (at most 13 bits) is exact (common.glsl xfma_split)
                float dh, dl;
                fma_split(dd, 11u, dh, dl);
#endif
                [[unroll]] for (uint k = 0u; k < LPT; k++) {
#if defined(Q_DOT_SWAR)
                    // bits 16..31 of ce * ae: c0 x0' + c2 x2' (<= 2 * 31 * 255), below them
                    // c0 x2' (no carry); the same for the odd bytes; minus 128 * sum(c)
                    // (the code-side terms are the same for every token: written here, they
                    // measured faster than kept in arrays across the token loop)
                    const uint c = cw[r * LPT + k];
                    const uint ce = c & 0x00ff00ffu, co = (c >> 8) & 0x00ff00ffu;
                    const uint cs = ((ce + co) * 0x00010001u) >> 16; // sum of the 4 codes
                    const float is = float(int((ce * ae[k] + co * ao[k]) >> 16) - int(cs << 7));
#else
                    // LANE_ROWS (CPU drivers, where the integer dot product is byte
                    // extractions): (c0 + 65536 c2)(x2 + 65536 x0) = c0 x2 + 65536 (c0 x0 +
                    // c2 x2) mod 2^32, the pair sum within +-32512 (|c| <= 128, |x| <= 127) and
                    // c0 x2 within +-16256: + 2^15, >> 16 gives the pair sum; odd bytes alike
                    const uint c = cw[r * LPT + k];
                    const int ae = (int(c << 24u) >> 24) + ((int(c << 8u) >> 24) << 16);
                    const int ad = (int(c << 16u) >> 24) + ((int(c) >> 24) << 16);
                    const float is =
                        LANE_ROWS ? float(((ae * be[k] + 32768) >> 16) + ((ad * bd[k] + 32768) >> 16))
                                  : float(q_dot4(c, a[k]));
#endif
#if defined(Q_ISUM_SMALL)
                    acc[i * LPT + k] = xfma_split(dd, dh, dl, is, acc[i * LPT + k]);
#else
                    acc[i * LPT + k] = xfma_finite(dd, is, acc[i * LPT + k]);
#endif
                }
#if defined(Q_HAS_MIN)
                // m_w * s_x: two fp16 values, an exact product, so the CPU's fma is this
                // multiply and add (lane 0 stores the sum)
                if (lane == 0u) {
                    precise float mp = mw[r] * sx;
                    precise float ms = msum[i] + mp;
                    msum[i] = ms;
                }
#endif
            }
        }
    }

    if (!LANE_ROWS) {
        [[unroll]] for (uint i = 0u; i < NR * NT; i++) red[i * WG + tid] = acc[i];
        barrier();
        if (lane != 0u) return;
    }
    [[unroll]] for (uint i = 0u; i < NR * NT; i++) {
        const uint r = i / NT, t = i - r * NT;
        if (r0 + r >= pc.n_rows || t >= nt) continue;
        float l[8];
        if (LANE_ROWS) {
            [[unroll]] for (uint k = 0u; k < 8u; k++) l[k] = acc[i * LPT + k % LPT];
        } else {
            [[unroll]] for (uint k = 0u; k < 8u; k++) l[k] = red[i * WG + tid + k];
        }
        precise float v = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
#if defined(Q_HAS_MIN)
        v += msum[i];
#endif
        const uint yi = y0 + t * pc.y_stride + pc.y_row0 + r0 + r;
        y[yi] = pc.accumulate != 0u ? y[yi] + v : v;
    }
}
#else

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const Tile tl = tile_of(LANE_ROWS ? NR * WG : NR);
    if (tl.wg0 >= pc.n_rows) return; // whole workgroup
    const uint r0 = LANE_ROWS ? tl.wg0 + tid * NR : tl.wg0; // this thread's first row
    const uint x0 = tl.x0, y0 = tl.y0, nt = tl.nt, xt_last = tl.xt_last;

    const uint b_first = LANE_ROWS ? 0u : tid, b_step = LANE_ROWS ? 1u : WG;
    uint bo_row[NR]; // rows past the end repeat the last one; their sums are not stored
    [[unroll]] for (uint r = 0u; r < NR; r++)
        bo_row[r] = min(r0 + r, pc.n_rows - 1u) * pc.w_row_bytes;
    float acc[NR * NT];
    [[unroll]] for (uint i = 0u; i < NR * NT; i++) acc[i] = 0.0;

#if defined(Q_FLOAT)
    // products of fp16 / bf16 values are exact in fp32, so only the order of the sum differs
    const uint n4 = pc.nb / 4u;
    for (uint e4 = b_first; e4 < n4; e4 += b_step) {
        vec4 wv[NR];
        [[unroll]] for (uint r = 0u; r < NR; r++) wv[r] = q_float4(bo_row[r], 4u * e4);
        [[unroll]] for (uint t = 0u; t < NT; t++) {
            const uint xo = x0 + min(t * pc.x_row_words, xt_last) + 4u * e4;
            const vec4 xv = vec4(xf(xo), xf(xo + 1u), xf(xo + 2u), xf(xo + 3u));
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                precise float p = ((wv[r].x * xv.x + wv[r].y * xv.y) + wv[r].z * xv.z) +
                                  wv[r].w * xv.w;
                acc[r * NT + t] += p;
            }
        }
    }
    for (uint e = 4u * n4 + b_first; e < pc.nb; e += b_step)
        [[unroll]] for (uint t = 0u; t < NT; t++)
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                precise float p =
                    q_float(bo_row[r], e) * xf(x0 + min(t * pc.x_row_words, xt_last) + e);
                acc[r * NT + t] += p;
            }
#else // K formats: integer sums over the whole super-block, then one float combination
    for (uint b = b_first; b < pc.nb; b += b_step) {
        int is[NR * NT], ms[NR * NT];
        [[unroll]] for (uint i = 0u; i < NR * NT; i++) is[i] = ms[i] = 0;
        for (uint s = 0u; s < 8u; s++) {
            uint cw[NR * 8u];
            int sc[NR * 2u], mn[NR * 2u];
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                const uint bo = bo_row[r] + b * QBYTES;
                uint c[8];
                q_codes32(bo, s, c);
                [[unroll]] for (uint k = 0u; k < 8u; k++) cw[r * 8u + k] = c[k];
#if Q_GROUP == 16
                sc[2u * r] = q_sc(bo, 2u * s);
                sc[2u * r + 1u] = q_sc(bo, 2u * s + 1u);
                mn[2u * r] = q_mn(bo, 2u * s);
                mn[2u * r + 1u] = q_mn(bo, 2u * s + 1u);
#else
                sc[2u * r] = q_sc(bo, s);
                mn[2u * r] = q_mn(bo, s);
#endif
            }
            [[unroll]] for (uint t = 0u; t < NT; t++) {
                const uint xo = x0 + min(t * pc.x_row_words, xt_last) + b * XQ8K_WORDS;
                uint a[8];
                [[unroll]] for (uint k = 0u; k < 8u; k++) a[k] = xq[xo + 8u * s + k];
                const int bs0 = int(xq[xo + 64u + 2u * s]), bs1 = int(xq[xo + 65u + 2u * s]);
                [[unroll]] for (uint r = 0u; r < NR; r++) {
                    int g0 = 0, g1 = 0;
                    [[unroll]] for (uint k = 0u; k < 4u; k++) {
                        g0 += q_dot4(cw[r * 8u + k], a[k]);
                        g1 += q_dot4(cw[r * 8u + 4u + k], a[4u + k]);
                    }
                    const uint i = r * NT + t;
#if Q_GROUP == 16
                    is[i] += sc[2u * r] * (g0 + Q_OFF * bs0) + sc[2u * r + 1u] * (g1 + Q_OFF * bs1);
                    ms[i] += mn[2u * r] * bs0 + mn[2u * r + 1u] * bs1;
#else
                    is[i] += sc[2u * r] * (g0 + g1 + Q_OFF * (bs0 + bs1));
                    ms[i] += mn[2u * r] * (bs0 + bs1);
#endif
                }
            }
        }
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            const uint bo = bo_row[r] + b * QBYTES;
            const float d = q_d(bo), dmin = q_dmin(bo);
            [[unroll]] for (uint t = 0u; t < NT; t++) {
                const float dx = xf(x0 + min(t * pc.x_row_words, xt_last) + b * XQ8K_WORDS + 80u);
                acc[r * NT + t] += q_kterm(is[r * NT + t], ms[r * NT + t], d, dmin, dx);
            }
        }
    }
#endif

    // ---- sum over the workgroup and store ----
    if (LANE_ROWS) {
        [[unroll]] for (uint i = 0u; i < NR * NT; i++) {
            const uint r = i / NT, t = i - r * NT;
            if (r0 + r >= pc.n_rows || t >= nt) continue;
            const uint yi = y0 + t * pc.y_stride + pc.y_row0 + r0 + r;
            y[yi] = pc.accumulate != 0u ? y[yi] + acc[i] : acc[i];
        }
        return;
    }
#if TIER >= 1
    [[unroll]] for (uint i = 0u; i < NR * NT; i++) acc[i] = subgroupAdd(acc[i]);
    if (gl_NumSubgroups > 1u) {
        if (gl_SubgroupInvocationID == 0u)
            [[unroll]] for (uint i = 0u; i < NR * NT; i++) red[i * WG + gl_SubgroupID] = acc[i];
        barrier();
    }
#else
    [[unroll]] for (uint i = 0u; i < NR * NT; i++) red[i * WG + tid] = acc[i];
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s)
            [[unroll]] for (uint i = 0u; i < NR * NT; i++)
                red[i * WG + tid] += red[i * WG + tid + s];
        barrier();
    }
#endif
    for (uint i = tid; i < NR * NT; i += WG) {
        const uint r = i / NT, t = i - r * NT;
        if (r0 + r >= pc.n_rows || t >= nt) continue;
#if TIER >= 1
        float v;
        if (gl_NumSubgroups > 1u) {
            v = 0.0;
            for (uint g = 0u; g < gl_NumSubgroups; g++) v += red[i * WG + g];
        } else {
            v = acc[i];
        }
#else
        const float v = red[i * WG];
#endif
        const uint yi = y0 + t * pc.y_stride + pc.y_row0 + r0 + r;
        y[yi] = pc.accumulate != 0u ? y[yi] + v : v;
    }
}
#endif
