/* The quad layout of S24_Q4 weights (cpu_s24.h): a repacking at load, in plain C.
 *
 * Positions. The AVX-512 kernels gather the kept activations of a row pair with one pshufb
 * whose index word w (0..31 of the 512-bit register: row w / 16, lane (w % 16) / 8, word
 * j = w % 8 in it) holds the bytes (4 (j / 2) + p0, 4 (j / 2) + p1) of group
 * 8 (j % 2) + 4 lane + j / 2 (cpu_s24_simd.h). The kernel broadcasts the pair's 16 position
 * bytes (qwords A, B) to all four 128-bit lanes and shifts each word right by
 * 2 * (w / 8): qword k of the register sees A (k even) or B (k odd), so word w reads the
 * 16-bit word w % 4 of A or B, and four words (w / 8 = 0..3) share it at shifts 0, 2, 4, 6.
 * Each keeps p0 at bits s, s+1 and p1 at bits 8+s, 9+s, so after the shift, bits 0-1 of the
 * low byte are p0 and of the high byte p1; the kernel masks them and adds 4 (j / 2). The AVX2
 * kernel takes one row's 256 bits of that register (its shifts: 4 half, 4 half + 2) and
 * shifts dwords instead of words, which gives the same bits 0-1 of both bytes (s <= 6).
 *
 * A model's quads: one per S24_Q4 layer matrix (wq, wk, wv, wo, w_gate, w_up, w_down of each
 * layer), found again from the weight's address in the model's layer array.
 */
#include "cpu/cpu_s24.h"

#include "core/common.h"
#include "core/quant_blocks.h"
#include "engine/engine.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

uint64_t cpu_s24_quads_bytes(int64_t rows, int64_t n_in) {
    if (rows <= 0 || n_in <= 0 || n_in % QUANT_S24_COLS || n_in > CPU_S24_QUADS_MAX_IN) return 0;
    return (uint64_t)((rows + 3) / 4) * (uint64_t)(n_in / QUANT_S24_COLS) * CPU_S24_QUAD_BYTES;
}

/* Where each byte of a quad block comes from, the same for every block: built once per
 * matrix, so the packing is table lookups. */
typedef struct quad_map {
    uint8_t code_byte[32], code_shift[32];    /* row byte i: (qs[code_byte] >> code_shift) & 15 */
    uint8_t pos_off[2][16], pos_shift[2][16]; /* row half h, group word: where p0 goes */
    uint8_t pos_group[16];
} quad_map;

static void make_map(quad_map *m) {
    for (int i = 0; i < 32; i++) { /* lane i / 16, word (i % 16) / 2, byte i % 2 */
        const int lane = i / 16, word = (i % 16) / 2;
        const int k = 16 * (word % 2) + 8 * lane + 2 * (word / 2) + i % 2;
        m->code_byte[i] = (uint8_t)(k % 16);
        m->code_shift[i] = (uint8_t)(k < 16 ? 0 : 4);
    }
    for (int h = 0; h < 2; h++)
        for (int v = 0; v < 16; v++) { /* word w = 16 h + v of the pair's 512 bits */
            const int w = 16 * h + v, k = w / 4;
            m->pos_off[h][v] = (uint8_t)(8 * (k % 2) + 2 * (w % 4)); /* word w % 4 of A or B */
            m->pos_shift[h][v] = (uint8_t)(2 * (k / 2));
            const int lane = v / 8, j = v % 8;
            m->pos_group[v] = (uint8_t)(8 * (j % 2) + 4 * lane + j / 2);
        }
}

static void pack_block(const quad_map *m, const quant_block_s24_q4 *const blk[4], uint8_t *sb) {
    for (int r = 0; r < 4; r++)
        memcpy(sb + 2 * r, &blk[r]->d, 2);
    for (int pair = 0; pair < 2; pair++) {
        uint8_t pos[16] = {0};
        for (int h = 0; h < 2; h++) {
            uint64_t p;
            memcpy(&p, blk[2 * pair + h]->pos, 8);
            for (int v = 0; v < 16; v++) {
                const unsigned nib = (unsigned)(p >> (4 * m->pos_group[v])) & 15;
                uint8_t *src = pos + m->pos_off[h][v];
                src[0] |= (uint8_t)((nib & 3) << m->pos_shift[h][v]);
                src[1] |= (uint8_t)((nib >> 2) << m->pos_shift[h][v]);
            }
        }
        memcpy(sb + 8 + 16 * pair, pos, 16);
    }
    for (int h = 0; h < 2; h++) /* byte 32 h + i: row h's code (low), row 2 + h's (high) */
        for (int i = 0; i < 32; i++) {
            const int lo = (blk[h]->qs[m->code_byte[i]] >> m->code_shift[i]) & 15;
            const int hi = (blk[2 + h]->qs[m->code_byte[i]] >> m->code_shift[i]) & 15;
            sb[40 + 32 * h + i] = (uint8_t)(lo | hi << 4);
        }
}

void cpu_s24_quads_pack(const void *w, size_t w_row_bytes, int64_t rows, int64_t n_in, void *dst) {
    quad_map map;
    make_map(&map);
    const int64_t nb = n_in / QUANT_S24_COLS;
    uint8_t *out = dst;
    for (int64_t r0 = 0; r0 < rows; r0 += 4) {
        const uint8_t *row[4];
        for (int r = 0; r < 4; r++)
            row[r] = (const uint8_t *)w + (size_t)(r0 + r < rows ? r0 + r : rows - 1) * w_row_bytes;
        for (int64_t b = 0; b < nb; b++, out += CPU_S24_QUAD_BYTES) {
            const quant_block_s24_q4 *blk[4];
            for (int r = 0; r < 4; r++)
                blk[r] = (const quant_block_s24_q4 *)row[r] + b;
            pack_block(&map, blk, out);
        }
    }
}

#define LAYER_MATS 7

struct cpu_s24_model_quads {
    uint32_t n;   /* n_layer * LAYER_MATS */
    void *mats[]; /* the repacked matrix, or NULL */
};

static const eng_weight *layer_mat(const eng_model *m, uint32_t i) {
    const eng_layer *L = &m->layers[i / LAYER_MATS];
    const eng_weight *mats[LAYER_MATS] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                          &L->w_gate, &L->w_up, &L->w_down};
    return mats[i % LAYER_MATS];
}

static uint64_t mat_quads_bytes(const eng_weight *w) {
    return w->type == QT_S24_Q4 ? cpu_s24_quads_bytes(w->n_out, w->n_in) : 0;
}

uint64_t cpu_s24_model_quads_bytes(const eng_model *m) {
    uint64_t total = 0;
    for (uint32_t i = 0; m->layers && i < m->cfg.n_layer * LAYER_MATS; i++)
        total += mat_quads_bytes(layer_mat(m, i));
    return total;
}

/* The pages wholly inside a repacked matrix's file bytes are no longer read: MADV_PAGEOUT lets
 * the kernel reclaim them, so the model's resident memory stays its weights' size. It is a
 * hint that never changes what the memory holds (a file mapping or not). */
static void release_pages(const void *data, uint64_t bytes) {
#ifdef MADV_PAGEOUT
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)data + page - 1) & ~(page - 1);
    const uintptr_t b = ((uintptr_t)data + bytes) & ~(page - 1);
    if (b > a) (void)madvise((void *)a, b - a, MADV_PAGEOUT);
#else
    (void)data;
    (void)bytes;
#endif
}

cpu_s24_model_quads *cpu_s24_model_quads_make(const eng_model *m, const vkllm_allocator *a) {
    const uint32_t n = m->layers ? m->cfg.n_layer * LAYER_MATS : 0;
    cpu_s24_model_quads *q = core_calloc(a, 1, sizeof *q + (size_t)n * sizeof(void *));
    if (!q) return NULL;
    q->n = n;
    for (uint32_t i = 0; i < n; i++) {
        const eng_weight *w = layer_mat(m, i);
        const uint64_t bytes = mat_quads_bytes(w);
        if (!bytes) continue;
        if (!(q->mats[i] = core_alloc(a, (size_t)bytes, 64))) {
            cpu_s24_model_quads_free(q, a);
            return NULL;
        }
        cpu_s24_quads_pack(w->data, w->row_bytes, w->n_out, w->n_in, q->mats[i]);
        release_pages(w->data, w->row_bytes * w->n_out);
    }
    return q;
}

void cpu_s24_model_quads_free(cpu_s24_model_quads *q, const vkllm_allocator *a) {
    if (!q) return;
    for (uint32_t i = 0; i < q->n; i++)
        core_free(a, q->mats[i]);
    core_free(a, q);
}

const void *cpu_s24_quads_of(const cpu_s24_model_quads *q, const eng_model *m,
                             const eng_weight *w) {
    if (!q || w->type != QT_S24_Q4) return NULL;
    const uintptr_t p = (uintptr_t)w, l0 = (uintptr_t)m->layers;
    if (p < l0 || p >= l0 + (uintptr_t)q->n / LAYER_MATS * sizeof(eng_layer)) return NULL;
    const uint32_t l = (uint32_t)((p - l0) / sizeof(eng_layer));
    for (uint32_t j = 0; j < LAYER_MATS; j++)
        if (layer_mat(m, l * LAYER_MATS + j) == w) return q->mats[l * LAYER_MATS + j];
    return NULL;
}
