/* The conversion of a model's layer matrices to the packed 2:4 formats (prune_s24.h). */
#include "engine/prune_s24.h"

#include "core/quant_blocks.h"
#include "core/quant_s24.h"

#include <stdio.h>
#include <string.h>

static const char *const k_matrices[] = {"attn_q.weight",      "attn_k.weight",   "attn_v.weight",
                                         "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                                         "ffn_down.weight"};

bool eng_prune_s24_applies(const gguf_tensor *t) {
    char name[64];
    if (t->name.len >= sizeof name) return false;
    memcpy(name, t->name.ptr, (size_t)t->name.len);
    name[t->name.len] = '\0';
    unsigned layer;
    int used = 0;
    if (sscanf(name, "blk.%u.%n", &layer, &used) != 1 || used == 0) return false;
    bool matrix = false;
    for (size_t i = 0; i < sizeof k_matrices / sizeof k_matrices[0]; i++)
        matrix |= strcmp(name + used, k_matrices[i]) == 0;
    const quant_traits *tr = quant_traits_of(t->type);
    return matrix && t->n_dims == 2 && t->ne[0] % QUANT_S24_COLS == 0 && tr && tr->dequant &&
           !quant_is_s24(t->type);
}

void eng_prune_s24_rows(uint32_t src_type, const void *src, quant_type type, void *dst,
                        int64_t n_in, int64_t n_rows, float *scratch) {
    const quant_traits *in = quant_traits_of(src_type), *out = quant_traits_of(type);
    const uint64_t in_rb = (uint64_t)n_in / in->block_size * in->type_size;
    const uint64_t out_rb = (uint64_t)n_in / out->block_size * out->type_size;
    for (int64_t r = 0; r < n_rows; r++) {
        in->dequant((const uint8_t *)src + (uint64_t)r * in_rb, scratch, n_in);
        out->quant(scratch, (uint8_t *)dst + (uint64_t)r * out_rb, n_in);
    }
}

static vkllm_status set_keys(gguf_writer *w, quant_type type, uint32_t n) {
    vkllm_status st;
    gguf_writer_remove(w, "general.file_type");
    (void)type, (void)n;
    if ((st = gguf_writer_set_str(w, ENG_SPARSITY_KEY_PATTERN, "2:4"))) return st;
    if ((st = gguf_writer_set_str(w, ENG_SPARSITY_KEY_METHOD, "magnitude"))) return st;
    if ((st = gguf_writer_set_str(w, ENG_SPARSITY_KEY_FORMAT, "packed"))) return st;
    return gguf_writer_set_f32(w, ENG_SPARSITY_KEY_AMOUNT, 0.5f);
}

vkllm_status eng_prune_s24(const gguf_file *src, const char *dst_path, quant_type type,
                           const vkllm_allocator *a, eng_prune_stats *stats, core_err *err) {
    if (!src || !dst_path || !quant_is_s24(type))
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "prune: needs a file, a path and an S24 type");
    eng_prune_stats s = {0};
    gguf_writer *w = gguf_writer_create(a);
    vkllm_status st = w ? gguf_writer_copy_kvs(w, src) : VKLLM_ERR_OUT_OF_MEMORY;
    void *buf = NULL;
    float *scratch = NULL;
    for (uint64_t i = 0; st == VKLLM_OK && i < gguf_tensor_count(src); i++) {
        const gguf_tensor *t = gguf_tensor_at(src, i);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (!t->data) {
            st = core_errf(err, VKLLM_ERR_BAD_FILE, "prune: tensor '%s' has no data", name);
            break;
        }
        if (!eng_prune_s24_applies(t)) {
            st = gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes,
                                        false);
            continue;
        }
        uint64_t rb = 0, nbytes = 0;
        if (!quant_row_bytes(type, t->ne[0], &rb) || !core_mul_ok(rb, t->ne[1], &nbytes)) {
            st = core_errf(err, VKLLM_ERR_BAD_FILE, "prune: tensor '%s' size", name);
            break;
        }
        buf = core_alloc(a, (size_t)nbytes, 0);
        scratch = core_alloc(a, (size_t)t->ne[0] * sizeof(float), 0);
        if (!buf || !scratch) {
            st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "prune: out of memory for '%s'", name);
            break;
        }
        eng_prune_s24_rows(t->type, t->data, type, buf, (int64_t)t->ne[0], (int64_t)t->ne[1],
                           scratch);
        st = gguf_writer_add_tensor(w, name, type, 2, t->ne, buf, nbytes, true);
        core_free(a, buf);
        core_free(a, scratch);
        buf = NULL;
        scratch = NULL;
        s.n_pruned++;
        s.bytes_in += t->nbytes;
        s.bytes_out += nbytes;
    }
    core_free(a, buf);
    core_free(a, scratch);
    if (st == VKLLM_OK) st = set_keys(w, type, s.n_pruned);
    if (st == VKLLM_OK)
        st = gguf_writer_write(w, dst_path, err);
    else if (err && !err->msg[0])
        core_errf(err, st, "prune: building %s failed", dst_path);
    gguf_writer_free(w);
    if (st == VKLLM_OK && stats) *stats = s;
    return st;
}
