/* Matrix products and the embedding lookup on the device: activation quantization
 * (shaders/quantize.comp), matrix-vector kernels (matvec.comp: decode, and prefill in tiles of
 * 16 tokens on CPU drivers), the shared-memory tiled kernel for prefill on GPUs (matmul.comp)
 * and the embedding (embed.comp), for every weight format the CPU path supports (the packed
 * 2:4 formats: no embedding); block layouts in shaders/quant.glsl. It must not know about models or record barriers.
 *
 * Numerics follow the CPU path (src/core/quant.c): activations are quantized to the weight's
 * vec_dot_type with the CPU's rounding, each block's integer dot product is exact and combined
 * in float as the reference vec_dot does; only the order of the sum over blocks differs.
 *
 * Pipelines are built on first use: a (format, token count) pair a model never runs costs
 * nothing, and lavapipe compiles every pipeline to machine code. This module records
 * dispatches only; barriers between dependent ops are the caller's (vk_rec_barrier).
 */
#include "vk/vk_ops.h"

#include "core/quant.h"

#include <stdio.h>
#include <string.h>

#define MM_NT_MAX 16     /* tokens per matrix-vector tile at most (vk_mm_tuning.mv_tokens) */
#define MM_QUANT_WG 64   /* threads per workgroup of the quantizer and the embedding */

/* The formats with kernels, in shader-name order; act is the vec_dot_type's layout. */
enum { ACT_Q8, ACT_Q8K, ACT_F16, ACT_BF16, ACT_F32, ACT_COUNT };
static const char *const k_act_stem[ACT_COUNT] = {"quantize_q8", "quantize_q8_K",
                                                  "quantize_f16", "quantize_bf16",
                                                  "quantize_f32"};
static const struct {
    uint32_t type;
    const char *name;
} k_types[] = {
    {QT_F32, "f32"},   {QT_F16, "f16"},   {QT_BF16, "bf16"}, {QT_Q4_0, "q4_0"},
    {QT_Q4_1, "q4_1"}, {QT_Q5_0, "q5_0"}, {QT_Q5_1, "q5_1"}, {QT_Q8_0, "q8_0"},
    {QT_Q2_K, "q2_K"}, {QT_Q3_K, "q3_K"}, {QT_Q4_K, "q4_K"}, {QT_Q5_K, "q5_K"},
    {QT_Q6_K, "q6_K"},
    {QT_S24_Q4, "s24_q4"}, {QT_S24_Q8, "s24_q8"}, /* packed 2:4 (quant_blocks.h) */
};
#define N_TYPES (sizeof k_types / sizeof k_types[0])

struct vk_mm {
    vk_dev *d;
    vk_mm_tuning tn;
    vk_pipe quant[ACT_COUNT];
    vk_pipe mv[N_TYPES][MM_NT_MAX];
    vk_pipe mm[N_TYPES];
    vk_pipe embed[N_TYPES];
};

static int type_index(uint32_t w_type) {
    for (size_t i = 0; i < N_TYPES; i++)
        if (k_types[i].type == w_type) return (int)i;
    return -1;
}

static int act_of(uint32_t w_type) {
    const quant_traits *tr = quant_traits_of(w_type);
    switch (tr ? tr->vec_dot_type : QT_COUNT) {
    case QT_Q8_0:
    case QT_Q8_1: return ACT_Q8;
    case QT_Q8_K: return ACT_Q8K;
    case QT_F16: return ACT_F16;
    case QT_BF16: return ACT_BF16;
    case QT_F32: return ACT_F32;
    default: return -1;
    }
}

/* Elements per activation block and its 32-bit words (shaders/quant.glsl). */
static void act_block(int act, uint32_t *elems, uint32_t *words) {
    switch (act) {
    case ACT_Q8: *elems = 32, *words = 12; break;
    case ACT_Q8K: *elems = 256, *words = 84; break;
    default: *elems = 1, *words = 1; break;
    }
}

bool vk_mm_supports(uint32_t w_type) { return type_index(w_type) >= 0; }

/* The packed 2:4 formats have no embedding kernel: the CPU's dequantizer writes +0 in pruned
 * columns and d * 0 (-0 where d < 0) in kept ones holding a zero code, which the shaders' code
 * words do not tell apart; a converted model keeps its token embedding dense. */
bool vk_embed_supports(uint32_t w_type) {
    return type_index(w_type) >= 0 && w_type != QT_S24_Q4 && w_type != QT_S24_Q8;
}

/* Columns of the kernels' block: the format's block, but 32 for the packed 2:4 formats, whose
 * 64-column blocks the shaders take as two halves, one per Q8_0 activation block
 * (shaders/quant.glsl q_bo). */
static uint32_t kernel_block(uint32_t w_type) {
    if (w_type == QT_S24_Q4 || w_type == QT_S24_Q8) return 32;
    return quant_traits_of(w_type)->block_size;
}

uint64_t vk_mm_act_row_bytes(uint32_t w_type, uint32_t n_in) {
    const int act = act_of(w_type);
    if (act < 0 || !vk_mm_supports(w_type)) return 0;
    uint32_t elems, words;
    act_block(act, &elems, &words);
    if (n_in % elems != 0) return 0;
    return (uint64_t)(n_in / elems) * words * 4;
}

static vkllm_status pipe_get(vk_mm *m, vk_pipe *p, const char *stem, uint32_t n_bind,
                             uint32_t wg, const vk_spec *spec, core_err *err) {
    if (p->name) return VKLLM_OK; /* set up (built at its first dispatch) */
    return vk_pipe_for_tier(m->d, stem, n_bind, (uint32_t[3]){wg, 1, 1}, spec, p, err);
}

/* The device's defaults. CPU drivers (lavapipe) pay for every 32-bit word a lane loads from a
 * buffer or shared memory (a loop over the lanes) and for local arrays indexed at run time,
 * so there each thread takes whole rows (no reduction, no shared memory) and prefill runs the
 * same kernel over tiles of 16 tokens; GPUs share a row among a subgroup and tile prefill
 * through shared memory. */
static vk_mm_tuning default_tuning(const vk_dev *d) {
    vk_mm_tuning t = {0};
    const bool cpu = strcmp(d->info.kind, "cpu-vulkan") == 0;
    /* one subgroup per workgroup where the size is known: no barrier in the sum */
    uint32_t wg = d->info.subgroup_size;
    if (wg < 8 || wg > 64 || (wg & (wg - 1)) != 0) wg = 32;
    t.mv_threads = wg;
    t.mv_rows = cpu ? 8 : 2;
    /* lavapipe: a thread's activation words are loaded once per its rows, and whole
     * workgroups are spread over few cores: 12 rows a thread, 8 threads (96 rows, a divisor
     * of the 576 / 1536 / 49152 of the default model; ~30% faster on 576 x 576 than 8 x 32) */
    if (cpu) t.mv_threads = 8, t.mv_rows = 12;
    /* lavapipe, several tokens: 12 rows x 16 tokens a thread reuses each activation word for
     * 12 rows and each weight word for 16 tokens (a 16-sequence decode step reads the weights
     * once; 1536 x 576 x 16: ~6% faster than two tiles of 8); 2 rows (16 accumulators) were
     * 2x slower on 576 x 576 x 512 than 12 */
    t.mv_tokens = cpu ? 16 : 8;
    t.mv_acc = cpu ? 192 : 8;
    t.mv_lane_rows = cpu;
    t.tiled = !cpu;
    /* 64 x 64 tiles, 4 x 4 per thread: 256 threads where allowed (128 is the minimum) */
    t.tile[0] = 64, t.tile[1] = 64, t.tile[2] = 4, t.tile[3] = 4;
    if (d->info.max_wg_invocations < 256) t.tile[3] = 8;
    return t;
}

vkllm_status vk_mm_create(vk_dev *d, vk_mm **out, core_err *err) {
    vk_mm *m = core_calloc(d->alloc, 1, sizeof *m);
    if (!m) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    m->d = d;
    m->tn = default_tuning(d);
    *out = m;
    return VKLLM_OK;
}

static void drop_pipes(vk_mm *m) {
    for (int a = 0; a < ACT_COUNT; a++) vk_pipe_destroy(m->d, &m->quant[a]);
    for (size_t i = 0; i < N_TYPES; i++) {
        for (int n = 0; n < MM_NT_MAX; n++) vk_pipe_destroy(m->d, &m->mv[i][n]);
        vk_pipe_destroy(m->d, &m->mm[i]);
        vk_pipe_destroy(m->d, &m->embed[i]);
    }
}

vk_mm_tuning vk_mm_get_tuning(const vk_mm *m) { return m->tn; }

vkllm_status vk_mm_set_tuning(vk_mm *m, const vk_mm_tuning *t, core_err *err) {
    const vk_dev_info *in = &m->d->info;
    const uint32_t *tl = t->tile;
    const bool pow2 = t->mv_threads && (t->mv_threads & (t->mv_threads - 1)) == 0;
    const uint32_t acc = t->mv_acc > t->mv_tokens ? t->mv_acc : t->mv_tokens;
    if (!pow2 || t->mv_threads < 8 || t->mv_threads > in->max_wg_invocations || t->mv_rows == 0 ||
        t->mv_rows > 16 || t->mv_acc == 0 || t->mv_acc > 256 || t->mv_tokens == 0 ||
        t->mv_tokens > MM_NT_MAX ||
        (uint64_t)acc * t->mv_threads * 4 > in->max_shared) /* matvec.comp red[] */
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vk_mm tuning: matvec %u threads, %u rows, "
                         "%u accumulators, %u tokens", t->mv_threads, t->mv_rows, t->mv_acc,
                         t->mv_tokens);
    if (!tl[2] || !tl[3] || tl[0] % tl[2] || tl[1] % tl[3] || tl[0] > 128 || tl[1] > 128 ||
        (tl[0] / tl[2]) * (tl[1] / tl[3]) > in->max_wg_invocations ||
        (tl[0] + 1 + tl[1] + 1) * 32 * 4 + tl[0] * 24 + tl[1] * 16 > in->max_shared)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vk_mm tuning: tile %u x %u by %u x %u",
                         tl[0], tl[1], tl[2], tl[3]);
    drop_pipes(m);
    m->tn = *t;
    return VKLLM_OK;
}

void vk_mm_destroy(vk_mm *m) {
    if (!m) return;
    drop_pipes(m);
    core_free(m->d->alloc, m);
}

/* gx * gy >= n groups within the 65535-per-dimension minimum limit; shaders flatten the id. */
static void split_groups(uint32_t n, uint32_t *gx, uint32_t *gy) {
    *gx = n < 65535 ? n : 65535;
    *gy = (n + *gx - 1) / *gx;
}

vkllm_status vk_mm_quantize(vk_rec *r, vk_mm *m, uint32_t w_type, vk_act x, uint32_t n_in,
                            uint32_t n_tok, vk_slice xq, core_err *err) {
    const int act = act_of(w_type);
    const uint64_t rb = vk_mm_act_row_bytes(w_type, n_in);
    if (act < 0 || rb == 0)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vk_mm_quantize: %s rows of %u",
                         quant_type_name(w_type), n_in);
    if (rb * n_tok > xq.size || n_tok > 65535)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vk_mm_quantize: %u rows of %llu bytes "
                         "do not fit %llu", n_tok, (unsigned long long)rb,
                         (unsigned long long)xq.size);
    vkllm_status st = pipe_get(m, &m->quant[act], k_act_stem[act], 2, MM_QUANT_WG, NULL, err);
    if (st != VKLLM_OK) return st;
    uint32_t elems, words;
    act_block(act, &elems, &words);
    struct {
        uint32_t n_in, x_stride, q_row_words, n_tok;
    } pc = {n_in, x.stride, (uint32_t)(rb / 4), n_tok};
    const uint32_t units = n_in / elems;
    vk_slice b[2] = {x.s, xq};
    return vk_rec_dispatch(r, &m->quant[act], b, 2, &pc, sizeof pc,
                           (units + MM_QUANT_WG - 1) / MM_QUANT_WG, n_tok, 1, err);
}

/* Rows per workgroup (lane_rows: per thread) of the nt-token matrix-vector kernel: as many as
 * the accumulator budget allows; half as many for the K formats, whose kernels are the largest
 * (lavapipe's compile time grows with the unrolled rows). */
static uint32_t mv_rows(const vk_mm *m, uint32_t w_type, uint32_t nt) {
    uint32_t r = m->tn.mv_acc / nt, cap = m->tn.mv_rows;
    if (quant_traits_of(w_type)->block_size == 256 && cap > 1) cap /= 2;
    return r < 1 ? 1 : r > cap ? cap : r;
}

/* Matrix-vector dispatch over n_tok tokens in tiles of nt (<= mv_tokens; the last tile may have
 * fewer) against one weight part. */
static vkllm_status matvec(vk_rec *r, vk_mm *m, int ti, const vk_weight *w, uint32_t p,
                           vk_slice xq, uint32_t x_row_words, uint32_t n_tok, uint32_t nt,
                           vk_act y, bool accumulate, core_err *err) {
    char stem[32];
    snprintf(stem, sizeof stem, "matvec_%s", k_types[ti].name);
    const uint32_t rows = mv_rows(m, w->type, nt);
    const vk_spec spec = {.n = 3, .v = {nt, rows, m->tn.mv_lane_rows},
                          .plain_fma = m->tn.plain_fma};
    vkllm_status st = pipe_get(m, &m->mv[ti][nt - 1], stem, 3, m->tn.mv_threads, &spec, err);
    if (st != VKLLM_OK) return st;
    struct {
        uint32_t n_rows, y_row0, nb, w_row_bytes, x_row_words, y_stride, accumulate, x0, y0;
        uint32_t n_tok;
    } pc = {
        w->part[p].n_rows, w->part[p].row0, w->n_in / kernel_block(w->type),
        (uint32_t)w->row_bytes, x_row_words, y.stride, accumulate, 0, 0, n_tok,
    };
    /* rows per workgroup: the 32-element formats' GPU layout gives each row 8 threads, one
     * per lane of the CPU path's sum (shaders/matvec.comp) */
    const bool lanes8 = kernel_block(w->type) == 32;
    const uint32_t wg_rows = m->tn.mv_lane_rows ? rows * m->tn.mv_threads
                             : lanes8           ? rows * (m->tn.mv_threads / 8)
                                                : rows;
    uint32_t gx, gy;
    split_groups((w->part[p].n_rows + wg_rows - 1) / wg_rows, &gx, &gy);
    vk_slice b[3] = {w->part[p].s, xq, y.s};
    return vk_rec_dispatch(r, &m->mv[ti][nt - 1], b, 3, &pc, sizeof pc, gx, gy,
                           (n_tok + nt - 1) / nt, err);
}

/* The tiled kernel over all n_tok tokens against one weight part. */
static vkllm_status matmul_tiled(vk_rec *r, vk_mm *m, int ti, const vk_weight *w, uint32_t p,
                                 vk_slice xq, uint32_t x_row_words, uint32_t n_tok, vk_act y,
                                 bool accumulate, core_err *err) {
    char stem[32];
    snprintf(stem, sizeof stem, "matmul_%s", k_types[ti].name);
    const uint32_t *tl = m->tn.tile;
    const vk_spec spec = {.n = 4, .v = {tl[0], tl[1], tl[2], tl[3]},
                          .plain_fma = m->tn.plain_fma};
    vkllm_status st = pipe_get(m, &m->mm[ti], stem, 3, (tl[0] / tl[2]) * (tl[1] / tl[3]), &spec,
                               err);
    if (st != VKLLM_OK) return st;
    struct {
        uint32_t n_rows, y_row0, nb, w_row_bytes, x_row_words, y_stride, accumulate, n_tok;
    } pc = {
        w->part[p].n_rows, w->part[p].row0, w->n_in / kernel_block(w->type),
        (uint32_t)w->row_bytes, x_row_words, y.stride, accumulate, n_tok,
    };
    const uint32_t gx = (w->part[p].n_rows + tl[0] - 1) / tl[0], gy = (n_tok + tl[1] - 1) / tl[1];
    if (gx > 65535 || gy > 65535)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan matmul: %u x %u tiles", gx, gy);
    vk_slice b[3] = {w->part[p].s, xq, y.s};
    return vk_rec_dispatch(r, &m->mm[ti], b, 3, &pc, sizeof pc, gx, gy, 1, err);
}

vkllm_status vk_mm_matmul(vk_rec *r, vk_mm *m, const vk_weight *w, vk_slice xq, uint32_t n_tok,
                          vk_act y, bool accumulate, core_err *err) {
    const int ti = type_index(w->type);
    const uint64_t rb = vk_mm_act_row_bytes(w->type, w->n_in);
    if (ti < 0 || rb == 0 || w->n_in % quant_traits_of(w->type)->block_size != 0)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan matmul: %s rows of %u",
                         quant_type_name(w->type), w->n_in);
    if (n_tok == 0) return VKLLM_OK;
    if (rb * n_tok > xq.size)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan matmul: %u activation rows of "
                         "%llu bytes do not fit %llu", n_tok, (unsigned long long)rb,
                         (unsigned long long)xq.size);
    if (w->row_bytes > UINT32_MAX || (uint64_t)n_tok * rb / 4 > UINT32_MAX || n_tok > 65535 * 8 ||
        (uint64_t)n_tok * y.stride > UINT32_MAX)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan matmul: shapes past 32-bit "
                         "indexing");
    for (uint32_t p = 0; p < w->n_parts; p++) {
        vkllm_status st = VKLLM_OK;
        const uint32_t xw = (uint32_t)(rb / 4);
        const uint32_t nt = m->tn.mv_tokens;
        if (n_tok > nt && m->tn.tiled)
            st = matmul_tiled(r, m, ti, w, p, xq, xw, n_tok, y, accumulate, err);
        else
            st = matvec(r, m, ti, w, p, xq, xw, n_tok, n_tok < nt ? n_tok : nt, y, accumulate,
                        err);
        if (st != VKLLM_OK) return st;
    }
    return VKLLM_OK;
}

vkllm_status vk_embed(vk_rec *r, vk_mm *m, const vk_weight *w, vk_slice params, vk_act dst,
                      uint32_t n_tok, core_err *err) {
    const int ti = type_index(w->type);
    const quant_traits *tr = quant_traits_of(w->type);
    if (!vk_embed_supports(w->type) || w->n_in % tr->block_size != 0)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan embedding: %s rows of %u",
                         quant_type_name(w->type), w->n_in);
    char stem[32];
    snprintf(stem, sizeof stem, "embed_%s", k_types[ti].name);
    vkllm_status st = pipe_get(m, &m->embed[ti], stem, 3, MM_QUANT_WG, NULL, err);
    if (st != VKLLM_OK) return st;
    const uint32_t units = tr->block_size == 1 ? w->n_in : w->n_in / 32;
    for (uint32_t p = 0; p < w->n_parts; p++) {
        struct {
            uint32_t row0, n_rows, n_out, n_in, w_row_bytes, dst_stride, first;
        } pc = {w->part[p].row0, w->part[p].n_rows, w->n_out, w->n_in, (uint32_t)w->row_bytes,
                dst.stride, p == 0};
        vk_slice b[3] = {w->part[p].s, params, dst.s};
        st = vk_rec_dispatch(r, &m->embed[ti], b, 3, &pc, sizeof pc,
                             (units + MM_QUANT_WG - 1) / MM_QUANT_WG, n_tok, 1, err);
        if (st != VKLLM_OK) return st;
    }
    return VKLLM_OK;
}
