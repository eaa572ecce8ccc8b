/* The Vulkan backend (see vk_backend.c): creation only; everything else goes through
 * eng_backend_vtbl. */
#ifndef VKLLM_VK_BACKEND_H
#define VKLLM_VK_BACKEND_H

#include "engine/engine.h"

typedef struct vk_backend_desc {
    const vkllm_allocator *alloc;
    void (*log)(void *user, vkllm_log_level level, const char *msg);
    void *log_user;
    const char *select;    /* "vulkan", "vulkan:N", "vulkan:NAME" */
    int max_tier;          /* -1 = the device's best */
    uint64_t memory_cap;   /* bytes, 0 = none */
    uint64_t max_buffer;   /* 0 = maxStorageBufferRange; smaller forces tensor splits (tests) */
    int n_splits;          /* decode attention chunks over a long cache (the CPU thread count) */
    bool skip_cpu_devices; /* fail with VKLLM_ERR_NO_DEVICE if the best device is a CPU */
    bool relaxed_products; /* vkllm_runtime_desc.vk_relaxed_products */
    const vkllm_vulkan_device *host; /* vkllm_runtime_desc.vk_device, or NULL */
    const void *vkac;                /* VkAllocationCallbacks *, or NULL */
} vk_backend_desc;

vkllm_status vk_backend_create(const vk_backend_desc *desc, eng_backend **out, core_err *err);
/* The device under a Vulkan backend (tests). */
struct vk_dev *vk_backend_dev(eng_backend *be);

#endif
