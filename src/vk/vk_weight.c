/* Weights on the device: a matrix goes up whole when it fits one buffer, else split by rows
 * into parts of at most dev->max_buffer bytes each (the kernels record one dispatch per part).
 */
#include "vk/vk_ops.h"

#include <string.h>

vkllm_status vk_weight_upload(vk_dev *d, vk_arena *a, const char *name, uint32_t type,
                              uint32_t n_in, uint32_t n_out, uint64_t row_bytes,
                              const void *data, vk_weight *out, core_err *err) {
    memset(out, 0, sizeof *out);
    out->type = type;
    out->n_in = n_in;
    out->n_out = n_out;
    out->row_bytes = row_bytes;
    if (row_bytes == 0 || n_out == 0)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "tensor %s: empty", name);
    if (row_bytes > d->max_buffer)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "tensor %s: one row is %llu bytes, more than the device's largest "
                         "buffer (%llu bytes)", name, (unsigned long long)row_bytes,
                         (unsigned long long)d->max_buffer);
    const uint64_t rows_per = d->max_buffer / row_bytes;
    const uint64_t n_parts = (n_out + rows_per - 1) / rows_per;
    if (n_parts > VK_MAX_PARTS)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "tensor %s: %llu bytes need %llu buffers of at most %llu bytes; the "
                         "limit is %d", name, (unsigned long long)(row_bytes * n_out),
                         (unsigned long long)n_parts, (unsigned long long)d->max_buffer,
                         VK_MAX_PARTS);
    for (uint32_t p = 0; p < n_parts; p++) {
        const uint32_t r0 = (uint32_t)(p * rows_per);
        const uint32_t nr = (uint32_t)(n_out - r0 < rows_per ? n_out - r0 : rows_per);
        const uint64_t bytes = (uint64_t)nr * row_bytes;
        vkllm_status st = vk_arena_alloc(a, bytes, &out->part[p].s, err);
        if (st == VKLLM_OK)
            st = vk_upload(d, &out->part[p].s, (const uint8_t *)data + (uint64_t)r0 * row_bytes,
                           bytes, err);
        if (st != VKLLM_OK) {
            char why[CORE_ERR_LEN];
            memcpy(why, err->msg, sizeof why);
            return core_errf(err, st, "tensor %s: %s", name, why);
        }
        out->part[p].row0 = r0;
        out->part[p].n_rows = nr;
        out->n_parts = p + 1;
    }
    return VKLLM_OK;
}
