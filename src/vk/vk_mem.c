/* Device memory: buffers with their own memory, arenas that sub-allocate ranges from large
 * buffers (never larger than dev->max_buffer, which is at most maxStorageBufferRange, so every
 * range can be bound whole), and staged uploads/downloads.
 *
 * A failed allocation, or one past the runtime's memory cap, is an error that says how much
 * was asked for and how much is in use: never a crash.
 */
#include "vk/vk.h"

#include <string.h>

#define VK_STAGING_BYTES (8u << 20)

static uint64_t align_up(uint64_t v, uint64_t a) {
    return (v + a - 1) / a * a;
}

/* Counts size against the memory cap before allocating, so threads allocating at once never
 * pass the cap together. */
static bool mem_reserve(vk_dev *d, uint64_t size) {
    uint64_t cur = atomic_load(&d->allocated);
    do {
        if (d->memory_cap && cur + size > d->memory_cap) return false;
    } while (!atomic_compare_exchange_weak(&d->allocated, &cur, cur + size));
    return true;
}

vkllm_status vk_buffer_create(vk_dev *d, uint64_t size, bool host, vk_buffer *out, const char *what,
                              core_err *err) {
    memset(out, 0, sizeof *out);
    size = align_up(size ? size : 4, 256);
    if (!mem_reserve(d, size))
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                         "%s: %.1f MiB of device memory would pass the memory cap of %.1f MiB "
                         "(%.1f MiB in use)",
                         what, (double)size / 1048576.0, (double)d->memory_cap / 1048576.0,
                         (double)atomic_load(&d->allocated) / 1048576.0);
    out->size = size; /* what vk_buffer_destroy gives back, until the real size is known */
    VkBufferCreateInfo bi = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                 VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = d->t.vkCreateBuffer(d->dev, &bi, d->vkac, &out->buf);
    if (r != VK_SUCCESS) {
        vk_buffer_destroy(d, out);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: vkCreateBuffer(%llu bytes): %s", what,
                         (unsigned long long)size, vk_result_str(r));
    }
    VkMemoryRequirements req;
    d->t.vkGetBufferMemoryRequirements(d->dev, out->buf, &req);
    uint32_t type = host ? d->mem_type_host : d->mem_type_device;
    if (!(req.memoryTypeBits & (1u << type))) {
        vk_buffer_destroy(d, out);
        return core_errf(err, VKLLM_ERR_DEVICE, "%s: no memory type fits the buffer", what);
    }
    VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = type,
    };
    r = d->t.vkAllocateMemory(d->dev, &ai, d->vkac, &out->mem);
    if (r != VK_SUCCESS) {
        vk_buffer_destroy(d, out);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                         "%s: the device could not allocate %.1f MiB (%s; %.1f MiB already in use "
                         "by this runtime)",
                         what, (double)req.size / 1048576.0, vk_result_str(r),
                         (double)d->allocated / 1048576.0);
    }
    d->t.vkBindBufferMemory(d->dev, out->buf, out->mem, 0);
    if (host) {
        r = d->t.vkMapMemory(d->dev, out->mem, 0, VK_WHOLE_SIZE, 0, &out->map);
        if (r != VK_SUCCESS) {
            vk_buffer_destroy(d, out);
            return core_errf(err, VKLLM_ERR_DEVICE, "%s: vkMapMemory: %s", what, vk_result_str(r));
        }
    }
    atomic_fetch_add(&d->allocated, req.size - size);
    out->size = req.size;
    return VKLLM_OK;
}

void vk_buffer_destroy(vk_dev *d, vk_buffer *b) {
    if (b->map) d->t.vkUnmapMemory(d->dev, b->mem);
    if (b->buf) d->t.vkDestroyBuffer(d->dev, b->buf, d->vkac);
    if (b->mem) d->t.vkFreeMemory(d->dev, b->mem, d->vkac);
    atomic_fetch_sub(&d->allocated, b->size);
    memset(b, 0, sizeof *b);
}

void vk_arena_init(vk_arena *a, vk_dev *d, bool host, uint64_t block, const char *what) {
    memset(a, 0, sizeof *a);
    a->d = d;
    a->host = host;
    a->block = block && block < d->max_buffer ? block : d->max_buffer;
    a->what = what;
}

vkllm_status vk_arena_alloc(vk_arena *a, uint64_t size, vk_slice *out, core_err *err) {
    vk_dev *d = a->d;
    const uint64_t align = d->info.min_ssbo_align > 256 ? d->info.min_ssbo_align : 256;
    size = align_up(size ? size : 4, 16);
    if (size > d->max_buffer)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "%s: one range of %llu bytes is larger than the largest buffer "
                         "(%llu bytes); it must be split",
                         a->what, (unsigned long long)size, (unsigned long long)d->max_buffer);
    uint64_t off = align_up(a->used, align);
    if (a->n_bufs == 0 || off + size > a->bufs[a->n_bufs - 1].size) {
        if (a->n_bufs == a->cap_bufs) {
            uint32_t nc = a->cap_bufs ? a->cap_bufs * 2 : 8;
            vk_buffer *nb = core_calloc(d->alloc, nc, sizeof *nb);
            if (!nb) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", a->what);
            if (a->n_bufs) memcpy(nb, a->bufs, a->n_bufs * sizeof *nb);
            core_free(d->alloc, a->bufs);
            a->bufs = nb;
            a->cap_bufs = nc;
        }
        uint64_t bsize = size > a->block ? size : a->block;
        if (a->expect) {
            const uint64_t left = a->expect > a->placed ? a->expect - a->placed : 0;
            if (left < bsize) bsize = left > size ? left : size;
        }
        vkllm_status st = vk_buffer_create(d, bsize, a->host, &a->bufs[a->n_bufs], a->what, err);
        if (st == VKLLM_ERR_OUT_OF_MEMORY && bsize > size) {
            /* a whole block would pass the cap or the device's memory: this range alone may
             * not (a model placed to fill a device to its cap) */
            core_err_clear(err);
            st = vk_buffer_create(d, size, a->host, &a->bufs[a->n_bufs], a->what, err);
        }
        if (st != VKLLM_OK) return st;
        a->n_bufs++;
        off = 0;
    }
    vk_buffer *b = &a->bufs[a->n_bufs - 1];
    out->buf = b->buf;
    out->offset = off;
    out->size = size;
    out->map = b->map ? (uint8_t *)b->map + off : NULL;
    a->used = off + size;
    a->placed += size;
    return VKLLM_OK;
}

void vk_arena_free(vk_arena *a) {
    if (!a->d) return;
    for (uint32_t i = 0; i < a->n_bufs; i++)
        vk_buffer_destroy(a->d, &a->bufs[i]);
    core_free(a->d->alloc, a->bufs);
    a->bufs = NULL;
    a->n_bufs = a->cap_bufs = 0;
    a->used = a->placed = 0;
}

/* Transfers through one staging buffer in chunks; each chunk is a submit-and-wait. Load
 * time only: the token loop never stages. */
static vkllm_status staged(vk_dev *d, const vk_slice *s, void *host, uint64_t size, bool up,
                           core_err *err) {
    if (size > s->size)
        return core_errf(err, VKLLM_ERR_INTERNAL, "vulkan transfer of %llu bytes into %llu",
                         (unsigned long long)size, (unsigned long long)s->size);
    if (s->map) { /* host-visible: no staging */
        if (up)
            memcpy(s->map, host, size);
        else
            memcpy(host, s->map, size);
        return VKLLM_OK;
    }
    vk_buffer st;
    uint64_t chunk = size < VK_STAGING_BYTES ? size : VK_STAGING_BYTES;
    vkllm_status rc = vk_buffer_create(d, chunk, true, &st, "staging buffer", err);
    while (rc == VKLLM_ERR_OUT_OF_MEMORY && chunk > (1u << 20)) { /* near the cap: smaller */
        core_err_clear(err);
        chunk /= 2;
        rc = vk_buffer_create(d, chunk, true, &st, "staging buffer", err);
    }
    if (rc != VKLLM_OK) return rc;
    for (uint64_t done = 0; done < size && rc == VKLLM_OK;) {
        uint64_t n = size - done < chunk ? size - done : chunk;
        if (up) memcpy(st.map, (const uint8_t *)host + done, n);
        VkCommandBuffer cb;
        if ((rc = vk_oneshot_begin(d, &cb, err)) != VKLLM_OK) break;
        VkBufferCopy reg = {.srcOffset = up ? 0 : s->offset + done,
                            .dstOffset = up ? s->offset + done : 0,
                            .size = n};
        d->t.vkCmdCopyBuffer(cb, up ? st.buf : s->buf, up ? s->buf : st.buf, 1, &reg);
        if ((rc = vk_oneshot_end(d, cb, err)) != VKLLM_OK) break;
        if (!up) memcpy((uint8_t *)host + done, st.map, n);
        done += n;
    }
    vk_buffer_destroy(d, &st);
    return rc;
}

vkllm_status vk_upload(vk_dev *d, const vk_slice *dst, const void *src, uint64_t size,
                       core_err *err) {
    return staged(d, dst, (void *)src, size, true, err);
}

vkllm_status vk_download(vk_dev *d, const vk_slice *src, void *dst, uint64_t size, core_err *err) {
    return staged(d, src, dst, size, false, err);
}
