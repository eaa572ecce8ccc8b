// Tiled matrix-matrix product for prefill on GPUs: y[t][r] (+)= w[r] . x[t], a workgroup per
// BM rows x BN tokens, TM x TN outputs per thread. (CPU drivers run matvec.comp over tiles of
// 8 tokens instead: shared memory costs them as much as a buffer load.) The K dimension goes
// 32 elements (a block, or a sub-block of a K-format super-block) per step: the workgroup
// decodes the weights' values and the activations' codes into shared memory as floats, then
// every thread forms its group sums with fp32 multiply-adds. Those are exact: every product
// and partial sum is an integer below 2^24 (|q| <= 127, |x| <= 127, at most 32 terms), so each
// block's integer dot product is the CPU's. The 32-element formats then combine them exactly
// as the CPU path does (8 lane sums per block, fused chains over the blocks: matvec.comp), so
// they give its bits, as do the packed 2:4 formats (their halves taken as 32-element blocks:
// quant.glsl Q_S24); the K formats combine each super-block as src/core does (q_kterm), and
// only their order of the sum over blocks differs. Floats need no decode beyond fp16/bf16 ->
// fp32.
//
// Shared memory: (BM + 1 + BN + 1) x 32 floats plus per-row and per-token scales: 17.6 KiB at
// BM = BN = 64, under the 32 KiB every device we target has.
//
// Defines: TIER, WT_<type>. Specialization: 0 BM, 1 BN, 2 TM, 3 TN; 100 = (BM/TM) (BN/TN)
// threads. Bindings: 0 weight part, 1 activations (quant.glsl layout), 2 y.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(constant_id = 0) const uint BM = 64;
layout(constant_id = 1) const uint BN = 64;
layout(constant_id = 2) const uint TM = 4;
layout(constant_id = 3) const uint TN = 4;

layout(std430, binding = 0) readonly buffer Wb { uint w_data[]; };
layout(std430, binding = 1) readonly buffer Xb { uint xq[]; };
layout(std430, binding = 2) buffer Yb { float y[]; };
layout(push_constant) uniform PC {
    uint n_rows, y_row0, nb, w_row_bytes, x_row_words, y_stride, accumulate;
    uint n_tok;
} pc;

#define QW(i) w_data[i]
#include "quant.glsl"

#define WG gl_WorkGroupSize.x
const uint RT = BM / TM; // threads along rows

// [element][row or token]: the threads of a subgroup read neighbouring rows
shared float sw[32 * (BM + 1)];
shared float sx[32 * (BN + 1)];
shared vec2 sw_d[BM];   // d, m (32-element formats) or d, dmin (K formats)
shared ivec4 sw_s[BM];  // K: scales and mins of the sub-block's two groups of 16 (or one of 32)
shared vec2 sx_d[BN];   // d, s of the activation block (K: d)
shared ivec2 sx_s[BN];  // K: the sums of the two groups of 16

float xf(uint i) { return uintBitsToFloat(xq[i]); }

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;
    const uint tr = tid % RT, tc = tid / RT;
    float acc[TM * TN];
    for (uint i = 0u; i < TM * TN; i++) acc[i] = 0.0;
#if defined(Q_KFORMAT)
    int is[TM * TN], ms[TM * TN];
    for (uint i = 0u; i < TM * TN; i++) is[i] = ms[i] = 0;
    const uint n_sub = pc.nb * 8u;
#elif defined(Q_FLOAT)
    const uint n_sub = (pc.nb + 31u) / 32u; // nb = elements
#else
    const uint n_sub = pc.nb;
    float lacc[TM * TN * 8], msum[TM * TN]; // the CPU path's 8 lane sums (see matvec.comp)
    for (uint i = 0u; i < TM * TN * 8u; i++) lacc[i] = 0.0;
    for (uint i = 0u; i < TM * TN; i++) msum[i] = 0.0;
#endif

    for (uint sb = 0u; sb < n_sub; sb++) {
        // ---- decode 32 elements of BM rows and BN tokens into shared memory ----
#if defined(Q_FLOAT)
        for (uint i = tid; i < BM * 8u; i += WG) {
            const uint r = i / 8u, e = 32u * sb + 4u * (i % 8u);
            const uint bo = min(m0 + r, pc.n_rows - 1u) * pc.w_row_bytes;
            vec4 v;
            if (e + 4u <= pc.nb) v = q_float4(bo, e);
            else
                for (uint k = 0u; k < 4u; k++) v[k] = e + k < pc.nb ? q_float(bo, e + k) : 0.0;
            for (uint k = 0u; k < 4u; k++) sw[(4u * (i % 8u) + k) * (BM + 1u) + r] = v[k];
        }
        for (uint i = tid; i < BN * 8u; i += WG) {
            const uint t = i / 8u, e = 32u * sb + 4u * (i % 8u);
            const uint xo = min(n0 + t, pc.n_tok - 1u) * pc.x_row_words;
            for (uint k = 0u; k < 4u; k++)
                sx[(4u * (i % 8u) + k) * (BN + 1u) + t] = e + k < pc.nb ? xf(xo + e + k) : 0.0;
        }
#else
        const uint b = sb / (QK / 32), s = sb % (QK / 32);
        for (uint r = tid; r < BM; r += WG) {
            const uint bo = min(m0 + r, pc.n_rows - 1u) * pc.w_row_bytes + q_bo(b);
            uint c[8];
#if defined(Q_KFORMAT)
            q_codes32(bo, s, c);
#else
            float d, m;
            q_block(bo, c, d, m);
            sw_d[r] = vec2(d, m);
#endif
            for (uint w = 0u; w < 8u; w++)
                for (uint j = 0u; j < 4u; j++)
                    sw[(4u * w + j) * (BM + 1u) + r] = float(q_code(c[w], j) + Q_OFF);
#if defined(Q_KFORMAT)
            if (s == 0u) sw_d[r] = vec2(q_d(bo), q_dmin(bo));
#if Q_GROUP == 16
            sw_s[r] = ivec4(q_sc(bo, 2u * s), q_sc(bo, 2u * s + 1u), q_mn(bo, 2u * s),
                            q_mn(bo, 2u * s + 1u));
#else
            sw_s[r] = ivec4(q_sc(bo, s), 0, q_mn(bo, s), 0);
#endif
#endif
        }
        for (uint i = tid; i < BN * 8u; i += WG) {
            const uint t = i / 8u, w = i % 8u;
            const uint xrow = min(n0 + t, pc.n_tok - 1u) * pc.x_row_words;
#if defined(Q_KFORMAT)
            const uint xo = xrow + b * XQ8K_WORDS;
            const uint word = xq[xo + 8u * s + w];
            if (w == 0u) {
                sx_d[t] = vec2(xf(xo + 80u), 0.0);
                sx_s[t] = ivec2(int(xq[xo + 64u + 2u * s]), int(xq[xo + 65u + 2u * s]));
            }
#else
            const uint xo = xrow + b * XQ8_WORDS;
            const uint word = xq[xo + w];
            if (w == 0u) sx_d[t] = vec2(xf(xo + 8u), xf(xo + 9u));
#endif
            for (uint j = 0u; j < 4u; j++)
                sx[(4u * w + j) * (BN + 1u) + t] =
                    float(bitfieldExtract(int(word), int(8u * j), 8));
        }
#endif
        barrier();

        // ---- group sums (exact), then each block's float combination ----
#if defined(Q_LEGACY)
        // the 32-element formats in the CPU path's order: lane l (elements 4l .. 4l + 3) of
        // every output is a fused chain over the blocks
        for (uint l = 0u; l < 8u; l++) {
            float g[TM * TN];
            for (uint i = 0u; i < TM * TN; i++) g[i] = 0.0;
            for (uint k = 4u * l; k < 4u * l + 4u; k++) {
                float wv[TM], xv[TN];
                for (uint i = 0u; i < TM; i++) wv[i] = sw[k * (BM + 1u) + tr + i * RT];
                for (uint j = 0u; j < TN; j++) xv[j] = sx[k * (BN + 1u) + tc + j * (BN / TN)];
                for (uint i = 0u; i < TM; i++)
                    for (uint j = 0u; j < TN; j++) g[i * TN + j] = fma(wv[i], xv[j], g[i * TN + j]);
            }
            for (uint i = 0u; i < TM; i++)
                for (uint j = 0u; j < TN; j++) {
                    precise float dd = sw_d[tr + i * RT].x * sx_d[tc + j * (BN / TN)].x;
                    const uint o = (i * TN + j) * 8u + l;
                    lacc[o] = xfma(dd, g[i * TN + j], lacc[o]);
                }
        }
#if defined(Q_HAS_MIN)
        for (uint i = 0u; i < TM; i++)
            for (uint j = 0u; j < TN; j++)
                msum[i * TN + j] = xfma(sw_d[tr + i * RT].y, sx_d[tc + j * (BN / TN)].y,
                                        msum[i * TN + j]);
#endif
#else
        float g[TM * TN];
        for (uint i = 0u; i < TM * TN; i++) g[i] = 0.0;
#if defined(Q_KFORMAT) && Q_GROUP == 16
        float g0[TM * TN];
#endif
        for (uint k = 0u; k < 32u; k++) {
            float wv[TM], xv[TN];
            for (uint i = 0u; i < TM; i++) wv[i] = sw[k * (BM + 1u) + tr + i * RT];
            for (uint j = 0u; j < TN; j++) xv[j] = sx[k * (BN + 1u) + tc + j * (BN / TN)];
            for (uint i = 0u; i < TM; i++)
                for (uint j = 0u; j < TN; j++) g[i * TN + j] = fma(wv[i], xv[j], g[i * TN + j]);
#if defined(Q_KFORMAT) && Q_GROUP == 16
            if (k == 15u)
                for (uint i = 0u; i < TM * TN; i++) {
                    g0[i] = g[i];
                    g[i] = 0.0;
                }
#endif
        }
#if defined(Q_FLOAT)
        for (uint i = 0u; i < TM * TN; i++) acc[i] += g[i];
#else
        for (uint i = 0u; i < TM; i++) {
            const uint r = tr + i * RT;
            const vec2 wd = sw_d[r];
#if defined(Q_KFORMAT)
            const ivec4 ws = sw_s[r];
#endif
            for (uint j = 0u; j < TN; j++) {
                const uint t = tc + j * (BN / TN), o = i * TN + j;
                const vec2 xd = sx_d[t];
#if defined(Q_KFORMAT)
                const ivec2 bs = sx_s[t];
#if Q_GROUP == 16
                is[o] += ws.x * int(g0[o]) + ws.y * int(g[o]);
                ms[o] += ws.z * bs.x + ws.w * bs.y;
#else
                is[o] += ws.x * int(g[o]);
                ms[o] += ws.z * (bs.x + bs.y);
#endif
                if (s == 7u) {
                    acc[o] += q_kterm(is[o], ms[o], wd.x, wd.y, xd.x);
                    is[o] = ms[o] = 0;
                }
#endif
            }
        }
#endif
#endif // Q_LEGACY
        barrier();
    }
#if defined(Q_LEGACY)
    for (uint i = 0u; i < TM * TN; i++) {
        const uint o = 8u * i;
        precise float v = ((lacc[o] + lacc[o + 4u]) + (lacc[o + 2u] + lacc[o + 6u])) +
                          ((lacc[o + 1u] + lacc[o + 5u]) + (lacc[o + 3u] + lacc[o + 7u]));
#if defined(Q_HAS_MIN)
        v += msum[i];
#endif
        acc[i] = v;
    }
#endif

    for (uint i = 0u; i < TM; i++) {
        const uint r = m0 + tr + i * RT;
        if (r >= pc.n_rows) continue;
        for (uint j = 0u; j < TN; j++) {
            const uint t = n0 + tc + j * (BN / TN);
            if (t >= pc.n_tok) continue;
            const uint yi = t * pc.y_stride + pc.y_row0 + r;
            y[yi] = pc.accumulate != 0u ? y[yi] + acc[i * TN + j] : acc[i * TN + j];
        }
    }
}
