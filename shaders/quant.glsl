// Weight block formats on the device: the one shader-side mirror of src/core/quant_blocks.h.
// Each format is decoded here once, into the form every kernel uses (matvec, matmul, embed):
//  - codes: the per-element integers, 4 per uint word as (signed) bytes, 32 elements (8 words)
//    at a time; the element's value is code + Q_OFF (Q_OFF folds a constant offset such as
//    Q4_0's -8 out of the codes so they stay small and non-negative);
//  - the block's fp16 scale (and min), and for the K formats the group scales and mins.
// tests/test_vk_mm.c proves, through the embedding kernel, that the values decoded here are
// src/core's dequantized values bit for bit.
//
// Blocks are read as 32-bit words on every tier (tier 0 has no 8/16-bit storage): the includer
// defines QW(i), word i of the weight buffer, and one WT_<type> define. Block sizes are even
// (Q4_0 is 18 bytes), so every field read here starts at an even byte offset: a 4-byte read
// is one word or the halves of two neighbours, never more.
//
// Provided per format (bo = byte offset of the block):
//   QK, QBYTES        elements and bytes per block
//   q_bo(b)           byte offset of block b in a row (b * QBYTES; the packed 2:4 formats,
//                     whose kernel blocks are halves of 64-column blocks, below)
//   Q_OFF             value = code + Q_OFF
//   32-element formats: q_block(bo, c, d, m): the codes (c[k]: elements 4k .. 4k + 3), d and
//   m (Q_HAS_MIN; else 0); q_lane(bo, l, d, m): the word c[l] alone; q_signed(c): a code
//   word with Q_OFF folded into signed bytes; Q_ISUM_SMALL where a 4-element sum of values
//   times activation codes (|code| <= 127, 128 to be safe) is at most 2^13 in magnitude: Q4_0
//   (8 * 128 * 4), Q4_1 (15 * 128 * 4) and Q5_0 (16 * 128 * 4); not Q5_1 (31) or Q8_0 (128);
//   Q_DOT_SWAR where the codes are unsigned and at most 31 (Q4_1, Q5_1): matvec.comp's lane
//   sums take two products per 32-bit multiply (with activations x + 128 <= 255, a pair of
//   products stays under 2^16) instead of the integer dot product; the signed formats (Q4_0,
//   Q5_0, Q8_0) take two signed products per multiply there on CPU drivers (activation codes
//   are within +-127: the quantizers scale by 127 / amax)
//   K formats: q_codes32(bo, s, c), the codes of elements 32 s .. 32 s + 31
//   K formats (QK 256): Q_GROUP (16 or 32) elements per group, q_d, q_dmin, q_sc(bo, g),
//   q_mn(bo, g)
//   float formats (QK 1, Q_FLOAT): q_float(bo, e) element e, q_float4(bo, e) e .. e + 3
#ifndef QUANT_GLSL
#define QUANT_GLSL

// ---- activations, as shaders/quantize.comp writes them (src/vk/vk_ops_mm.c has the sizes) --
// The values are those of the CPU quantizers (src/core/quant.c); the layout is ours: codes 4
// to a word (what DOT4 takes), scales as floats holding the fp16 values, plus the code sum.
// Q8 (vec_dot_type Q8_0 and Q8_1 share it), per 32 elements: words 0-7 codes, 8 d, 9 s
// (fp16(d * sum), Q8_1's), 10 the sum of the codes (int), 11 zero.
#define XQ8_WORDS 12u
// Q8_K, per 256 elements: words 0-63 codes, 64-79 bsums (int, sums of 16), 80 d, 81-83 zero.
#define XQ8K_WORDS 84u
// F32, F16, BF16: one float per element holding the (rounded) value.

// Sum of the products of 4 signed bytes packed in a and b (exact).
int q_dot4(uint a, uint b) {
#if TIER >= 2
    return DOT4(a, b);
#else
    return bitfieldExtract(int(a), 0, 8) * bitfieldExtract(int(b), 0, 8) +
           bitfieldExtract(int(a), 8, 8) * bitfieldExtract(int(b), 8, 8) +
           bitfieldExtract(int(a), 16, 8) * bitfieldExtract(int(b), 16, 8) +
           bitfieldExtract(int(a), 24, 8) * bitfieldExtract(int(b), 24, 8);
#endif
}

#if defined(QW) // ---- weights ----------------------------------------------------------------

uint q_rd16(uint bo) { return (QW(bo >> 2) >> ((bo & 2u) * 8u)) & 0xffffu; }
uint q_rd8(uint bo) { return (QW(bo >> 2) >> ((bo & 3u) * 8u)) & 0xffu; }
// 4 bytes at an even offset
uint q_rd32(uint bo) {
    const uint i = bo >> 2;
    return (bo & 2u) == 0u ? QW(i) : (QW(i) >> 16) | (QW(i + 1u) << 16);
}
float q_half(uint bo) { return unpackHalf2x16(q_rd16(bo)).x; }
// 32 bytes at an even offset as 8 words: one test of the alignment for all, 8 or 9 loads
void q_rd32x8(uint bo, out uint k[8]) {
    const uint i = bo >> 2;
    if ((bo & 2u) == 0u) {
        [[unroll]] for (uint j = 0u; j < 8u; j++) k[j] = QW(i + j);
    } else {
        uint lo = QW(i);
        [[unroll]] for (uint j = 0u; j < 8u; j++) {
            const uint hi = QW(i + j + 1u);
            k[j] = (lo >> 16) | (hi << 16);
            lo = hi;
        }
    }
}
// the same at an offset known to be a multiple of 4 (blocks of 4-byte multiple sizes)
void q_rd32x8a(uint bo, out uint k[8]) {
    [[unroll]] for (uint j = 0u; j < 8u; j++) k[j] = QW((bo >> 2) + j);
}

// bit k of b (k < 4) to bit 4 of byte k: the fifth bit of Q5_0/Q5_1 codes
uint q_spread4(uint b) {
    return ((b & 1u) << 4) | ((b & 2u) << 11) | ((b & 4u) << 18) | ((b & 8u) << 25);
}

#if defined(WT_F32) || defined(WT_F16) || defined(WT_BF16)
#define Q_FLOAT 1
#define QK 1
#endif

#if defined(WT_F32)
#define QBYTES 4u
float q_float(uint bo, uint e) { return uintBitsToFloat(QW((bo >> 2) + e)); }
vec4 q_float4(uint bo, uint e) {
    const uint i = (bo >> 2) + e;
    return vec4(uintBitsToFloat(QW(i)), uintBitsToFloat(QW(i + 1u)), uintBitsToFloat(QW(i + 2u)),
                uintBitsToFloat(QW(i + 3u)));
}
#elif defined(WT_F16)
#define QBYTES 2u
float q_float(uint bo, uint e) { return unpackHalf2x16(q_rd16(bo + 2u * e)).x; }
// rows are 2-byte aligned: 4 elements from an odd half-word straddle three words
vec4 q_float4(uint bo, uint e) {
    const uint b = bo + 2u * e;
    return vec4(unpackHalf2x16(q_rd32(b)), unpackHalf2x16(q_rd32(b + 4u)));
}
#elif defined(WT_BF16)
#define QBYTES 2u
float q_float(uint bo, uint e) { return uintBitsToFloat(q_rd16(bo + 2u * e) << 16); }
vec4 q_float4(uint bo, uint e) {
    const uint b = bo + 2u * e, u0 = q_rd32(b), u1 = q_rd32(b + 4u);
    return vec4(uintBitsToFloat(u0 << 16), uintBitsToFloat(u0 & 0xffff0000u),
                uintBitsToFloat(u1 << 16), uintBitsToFloat(u1 & 0xffff0000u));
}

// ---- 32-element formats ----------------------------------------------------------------------
// q_block(bo, c, d, m): codes, d and m (0 without a min) of the block at bo, each word of the
// block loaded once (lavapipe pays per word and lane).
#elif defined(WT_Q4_0) // d; qs[16]: element j low nibble of qs[j], j + 16 the high one
#define QK 32
#define QBYTES 18u
#define Q_WORDS 5u
#define Q_QS 2u  // byte offsets in the block: codes (and Q5 high bits)
#define Q_OFF (-8)
#define Q_ISUM_SMALL 1
#elif defined(WT_Q4_1) // d, m; qs[16]
#define QK 32
#define QBYTES 20u
#define Q_WORDS 5u
#define Q_QS 4u
#define Q_ALIGN4 1
#define Q_OFF 0
#define Q_HAS_MIN 1
#define Q_ISUM_SMALL 1
#define Q_DOT_SWAR 1
#elif defined(WT_Q5_0) // d; qh (bit j = bit 4 of element j); qs[16]
#define QK 32
#define QBYTES 22u
#define Q_WORDS 6u
#define Q_QS 6u
#define Q_QH 2u
#define Q_OFF (-16)
#define Q_ISUM_SMALL 1
#elif defined(WT_Q5_1) // d, m; qh; qs[16]
#define QK 32
#define QBYTES 24u
#define Q_WORDS 6u
#define Q_QS 8u
#define Q_QH 4u
#define Q_ALIGN4 1
#define Q_OFF 0
#define Q_HAS_MIN 1
#define Q_DOT_SWAR 1
#elif defined(WT_Q8_0) // d; int8 qs[32]
#define QK 32
#define QBYTES 34u
#define Q_WORDS 9u
#define Q_QS 2u
#define Q_OFF 0
#define Q_SIGNED 1

// ---- vkllm's packed 2:4 formats (quant_blocks.h, after the ggml ones) ----------------------
// d; pos[8]; qs (S24_Q4: 16 bytes of nibbles, S24_Q8: 32 int8). A 64-column block is two
// kernel blocks of 32 columns, its halves h = 0, 1, each meeting one Q8_0 activation block: the
// kernels see a row as n / 32 blocks, q_bo (below) puts h in bit 0 of the byte offset, and a
// half decodes to the codes of its 32 columns, the pruned ones zero. The spec's lane l of half
// h (group 8h + l: columns 32h + 4l .. 32h + 4l + 3) is then word c[l], and its chain is the
// 32-element formats' (matvec.comp Q_LEGACY): the spec's arithmetic is Q4_0's with the zeros
// skipped. The codes are the signed values themselves (Q_OFF 0), so a pruned column is 0.
// A group's two positions must differ (the spec's first < second): one column named twice
// would hold both values in one byte, where the reference adds both products. There is no
// embedding: tests/test_vk_sparse.c proves this decode through the products, bit for bit.
#elif defined(WT_S24_Q4) || defined(WT_S24_Q8)
#define QK 32
#define Q_S24 1
#define Q_OFF 0
#define Q_SIGNED 1
#if defined(WT_S24_Q4)
#define QBYTES 26u
#define Q_WORDS 7u
#define Q_ISUM_SMALL 1 // two products of |q - 8| <= 8 and |x| <= 128
#else
#define QBYTES 42u
#define Q_WORDS 11u
#endif

// ---- K formats: 256-element super-blocks ----------------------------------------------------
#elif defined(WT_Q2_K) // scales[16] (lo nibble scale, hi min); qs[64]; d; dmin
#define QK 256
#define QBYTES 84u
#define Q_OFF 0
#define Q_GROUP 16
float q_d(uint bo) { return q_half(bo + 80u); }
float q_dmin(uint bo) { return q_half(bo + 82u); }
int q_sc(uint bo, uint g) { return int(q_rd8(bo + g) & 15u); }
int q_mn(uint bo, uint g) { return int(q_rd8(bo + g) >> 4); }
// element 128 h + 32 k + l: bits 2k of qs[32 h + l]
void q_codes32(uint bo, uint s, out uint c[8]) {
    const uint h = s >> 2, k = s & 3u;
    uint q[8];
    q_rd32x8a(bo + 16u + 32u * h, q);
    [[unroll]] for (uint w = 0u; w < 8u; w++) c[w] = (q[w] >> (2u * k)) & 0x03030303u;
}
#elif defined(WT_Q3_K) // hmask[32]; qs[64]; scales[12]; d
#define QK 256
#define QBYTES 110u
#define Q_OFF (-4)
#define Q_GROUP 16
float q_d(uint bo) { return q_half(bo + 108u); }
float q_dmin(uint bo) { return 0.0; }
// quant_k3_scale: low 4 bits in byte j % 8 (high nibble for j >= 8), top 2 in byte 8 + j % 4
int q_sc(uint bo, uint g) {
    const uint lo = (q_rd8(bo + 96u + (g & 7u)) >> (4u * (g >> 3))) & 15u;
    const uint hi = (q_rd8(bo + 104u + (g & 3u)) >> (2u * (g >> 2))) & 3u;
    return int(lo | (hi << 4)) - 32;
}
int q_mn(uint bo, uint g) { return 0; }
// code = low 2 bits + 4 * hmask bit (0..7), value = code - 4
void q_codes32(uint bo, uint s, out uint c[8]) {
    const uint h = s >> 2, k = s & 3u;
    uint q[8], m[8];
    q_rd32x8(bo + 32u + 32u * h, q);
    q_rd32x8(bo, m);
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        const uint lo = (q[w] >> (2u * k)) & 0x03030303u;
        const uint hb = (m[w] >> (4u * h + k)) & 0x01010101u;
        c[w] = lo | (hb << 2);
    }
}
#elif defined(WT_Q4_K) || defined(WT_Q5_K) // d; dmin; scales[12]; (Q5_K: qh[32]); qs[128]
#define QK 256
#define Q_OFF 0
#define Q_GROUP 32
#if defined(WT_Q4_K)
#define QBYTES 144u
#define Q_QS 16u
#else
#define QBYTES 176u
#define Q_QS 48u
#endif
float q_d(uint bo) { return q_half(bo); }
float q_dmin(uint bo) { return q_half(bo + 2u); }
// quant_k4_scale_min: groups 0-3 in the low 6 bits of bytes j, j + 4; groups 4-7 low 4 bits in
// byte j + 4 (scale low nibble, min high nibble), top 2 bits in bytes j - 4 (scale), j (min)
int q_sc(uint bo, uint g) {
    const uint s = bo + 4u;
    return g < 4u ? int(q_rd8(s + g) & 63u)
                  : int((q_rd8(s + g + 4u) & 15u) | ((q_rd8(s + g - 4u) >> 6) << 4));
}
int q_mn(uint bo, uint g) {
    const uint s = bo + 4u;
    return g < 4u ? int(q_rd8(s + g + 4u) & 63u)
                  : int((q_rd8(s + g + 4u) >> 4) | ((q_rd8(s + g) >> 6) << 4));
}
// group g: nibble (g & 1) of qs[32 (g / 2) + l]; Q5_K: bit g of qh[l] is bit 4
void q_codes32(uint bo, uint s, out uint c[8]) {
    uint q[8];
    q_rd32x8a(bo + Q_QS + 32u * (s >> 1), q);
#if defined(WT_Q5_K)
    uint qh[8];
    q_rd32x8a(bo + 16u, qh);
#endif
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        c[w] = (q[w] >> (4u * (s & 1u))) & 0x0f0f0f0fu;
#if defined(WT_Q5_K)
        c[w] |= ((qh[w] >> s) & 0x01010101u) << 4;
#endif
    }
}
#elif defined(WT_Q6_K) // ql[128]; qh[64]; int8 scales[16]; d
#define QK 256
#define QBYTES 210u
#define Q_OFF (-32)
#define Q_GROUP 16
float q_d(uint bo) { return q_half(bo + 208u); }
float q_dmin(uint bo) { return 0.0; }
int q_sc(uint bo, uint g) { return bitfieldExtract(int(q_rd8(bo + 192u + g)), 0, 8); }
int q_mn(uint bo, uint g) { return 0; }
// element 128 h + 32 k + l: nibble k / 2 of ql[64 h + 32 (k & 1) + l], bits 2k of qh[32 h + l]
void q_codes32(uint bo, uint s, out uint c[8]) {
    const uint h = s >> 2, k = s & 3u;
    uint ql[8], qh[8];
    q_rd32x8(bo + 64u * h + 32u * (k & 1u), ql);
    q_rd32x8(bo + 128u + 32u * h, qh);
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        const uint lo = (ql[w] >> (4u * (k >> 1))) & 0x0f0f0f0fu;
        const uint hi = (qh[w] >> (2u * k)) & 0x03030303u;
        c[w] = lo | (hi << 4);
    }
}
#else
#error "quant.glsl: no WT_<type> define"
#endif

#if QK == 32
#define Q_LEGACY 1
// The block's bytes as words from its start: k[j] = bytes 4j .. 4j + 3. A block at an offset
// of 2 mod 4 is shifted into place; its last word then holds the block's last 2 bytes only
// (Q_WORDS covers the block; no byte after it is read).
void q_words(uint bo, out uint k[Q_WORDS]) {
    const uint i = bo >> 2;
#if !defined(Q_ALIGN4)
    if ((bo & 2u) != 0u) {
        uint lo = QW(i);
        [[unroll]] for (uint j = 0u; j + 1u < Q_WORDS; j++) {
            const uint hi = QW(i + j + 1u);
            k[j] = (lo >> 16) | (hi << 16);
            lo = hi;
        }
        k[Q_WORDS - 1u] = lo >> 16;
        return;
    }
#endif
    [[unroll]] for (uint j = 0u; j < Q_WORDS; j++) k[j] = QW(i + j);
}
// the 4 bytes at even offset o of a block read by q_words
uint q_k32(uint k[Q_WORDS], uint o) {
    return (o & 2u) == 0u ? k[o >> 2] : (k[o >> 2] >> 16) | (k[(o >> 2) + 1u] << 16);
}

#endif

#if defined(Q_S24)
// Byte offset of kernel block b in a row: the half in bit 0 (blocks start at even offsets).
uint q_bo(uint b) { return (b >> 1) * QBYTES + (b & 1u); }

// The code word of a group: its two kept values (signed bytes: v0 in bits 0-7, v1 in 8-15)
// at the byte positions its pos nibble p names (bits 0-1 the first, 2-3 the second).
uint q_s24_word(uint p, uint v) {
    return ((v & 0xffu) << (8u * (p & 3u))) | ((v >> 8) << (8u * (p >> 2)));
}
// Group l's two values of half h from the 2 bytes at qs[2l] (S24_Q4: nibble h of each, as
// q - 8; S24_Q8: the bytes themselves, values 16h + 2l and 16h + 2l + 1 of the block).
uint q_s24_pair(uint b2, uint h) {
#if defined(WT_S24_Q4)
    return (((b2 >> (4u * h)) & 0x0f0fu) + 0x7878u) ^ 0x8080u; // q - 8 as signed bytes
#else
    return b2 & 0xffffu;
#endif
}

void q_block(uint bo, out uint c[8], out float d, out float m) {
    const uint h = bo & 1u, b0 = bo - h;
    const uint w0 = q_rd32(b0); // d, pos[0..1]
    d = unpackHalf2x16(w0).x;
    m = 0.0;
    const uint pw = h == 0u ? (w0 >> 16) | (q_rd32(b0 + 4u) << 16) : q_rd32(b0 + 6u);
#if defined(WT_S24_Q4)
    const uint qo = b0 + 10u;
#else
    const uint qo = b0 + 10u + 16u * h;
#endif
    // qs words: one alignment test for the 4 (the block's offset is even)
    uint q[4];
    const uint i = qo >> 2;
    if ((qo & 2u) == 0u) {
        [[unroll]] for (uint j = 0u; j < 4u; j++) q[j] = QW(i + j);
    } else {
        uint lo = QW(i);
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            const uint hi = QW(i + j + 1u);
            q[j] = (lo >> 16) | (hi << 16);
            lo = hi;
        }
    }
    [[unroll]] for (uint l = 0u; l < 8u; l++)
        c[l] = q_s24_word((pw >> (4u * l)) & 15u, q_s24_pair(q[l >> 1] >> (16u * (l & 1u)), h));
}

// Lane l (0..7) of half bo & 1 alone: word c[l] of q_block, in three small loads.
uint q_lane(uint bo, uint l, out float d, out float m) {
    const uint h = bo & 1u, b0 = bo - h;
    d = q_half(b0);
    m = 0.0;
    const uint p = (q_rd8(b0 + 2u + 4u * h + (l >> 1)) >> (4u * (l & 1u))) & 15u;
#if defined(WT_S24_Q4)
    const uint v = q_s24_pair(q_rd16(b0 + 10u + 2u * l), h);
#else
    const uint v = q_s24_pair(q_rd16(b0 + 10u + 16u * h + 2u * l), h);
#endif
    return q_s24_word(p, v);
}

// Half h of a block already read by q_words (k: its words from its start), for kernels that
// read a block once for both halves. Every word index is a constant once the caller's loops
// are unrolled, and h picks between two of them: CPU drivers keep run-time-indexed arrays in
// memory.
void q_s24_half(uint k[Q_WORDS], uint h, out uint c[8], out float d) {
    d = unpackHalf2x16(k[0]).x;
    const uint pw = h == 0u ? q_k32(k, 2u) : q_k32(k, 6u);
    uint q[4];
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
#if defined(WT_S24_Q4)
        q[j] = q_k32(k, 10u + 4u * j);
#else
        q[j] = h == 0u ? q_k32(k, 10u + 4u * j) : q_k32(k, 26u + 4u * j);
#endif
    }
    [[unroll]] for (uint l = 0u; l < 8u; l++)
        c[l] = q_s24_word((pw >> (4u * l)) & 15u, q_s24_pair(q[l >> 1] >> (16u * (l & 1u)), h));
}

uint q_signed(uint c) { return c; }

#elif QK == 32
uint q_bo(uint b) { return b * QBYTES; }
// d and m (0 without a min) of a 32-element block from its first word
void q_scales(uint w0, out float d, out float m) {
    const vec2 dm = unpackHalf2x16(w0);
    d = dm.x;
#if defined(Q_HAS_MIN)
    m = dm.y;
#else
    m = 0.0;
#endif
}

void q_block(uint bo, out uint c[8], out float d, out float m) {
    uint k[Q_WORDS];
    q_words(bo, k);
    q_scales(k[0], d, m);
#if defined(WT_Q8_0)
    [[unroll]] for (uint w = 0u; w < 8u; w++) c[w] = q_k32(k, Q_QS + 4u * w);
#else
#if defined(Q_QH)
    const uint qh = q_k32(k, Q_QH);
#endif
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        const uint q = q_k32(k, Q_QS + 4u * w);
        c[w] = q & 0x0f0f0f0fu;
        c[w + 4u] = (q >> 4) & 0x0f0f0f0fu;
#if defined(WT_Q5_0) || defined(WT_Q5_1)
        c[w] |= q_spread4((qh >> (4u * w)) & 15u);
        c[w + 4u] |= q_spread4((qh >> (16u + 4u * w)) & 15u);
#endif
    }
#endif
}

// Lane l (0..7) of the block at bo: the codes of elements 4l .. 4l + 3, the word q_block gives
// as c[l], read on its own (for kernels whose threads take one lane each), with d and m.
uint q_lane(uint bo, uint l, out float d, out float m) {
    q_scales(q_rd32(bo), d, m);
#if defined(WT_Q8_0)
    return q_rd32(bo + Q_QS + 4u * l);
#else
    uint c = (q_rd32(bo + Q_QS + 4u * (l & 3u)) >> (4u * (l >> 2))) & 0x0f0f0f0fu;
#if defined(Q_QH)
    c |= q_spread4((q_rd32(bo + Q_QH) >> (4u * l)) & 15u);
#endif
    return c;
#endif
}

// A code word with Q_OFF folded in: 4 signed bytes holding the element values (Q4_0's
// 0..15 -> -8..7), for dot products over a part of a block, where the offset cannot be applied
// through the block's activation sum. Bytes stay below 0x80 before the xor: no carries.
uint q_signed(uint c) {
#if Q_OFF != 0
    return (c + uint(0x80 + Q_OFF) * 0x01010101u) ^ 0x80808080u;
#else
    return c;
#endif
}
#endif

#if QK == 256
#define Q_KFORMAT 1
uint q_bo(uint b) { return b * QBYTES; }
// dot_k, per super-block: d_w d_x isum - dmin_w d_x msum
float q_kterm(int isum, int msum, float d, float dmin, float dx) {
    precise float v = d * dx * float(isum) - dmin * dx * float(msum);
    return v;
}
#endif

// Byte j (0..3) of a code word as an int: sign-extended for the signed formats.
int q_code(uint c, uint j) {
#if defined(Q_SIGNED)
    return bitfieldExtract(int(c), int(8u * j), 8);
#else
    return int((c >> (8u * j)) & 0xffu);
#endif
}

#endif // QW
#endif
