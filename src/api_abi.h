/* The struct_size rule of vkllm.h ("versions and the ABI") in one place: a public struct
 * crosses the API as a copy of the first struct_size bytes, so a host compiled against an
 * older vkllm.h (a shorter struct) never has bytes read or written past its end.
 *
 * API_V0_SIZE(T, last) is the size of T as this major version first defined it: the end of
 * its last field then. It names that field, so appending a field later does not move it;
 * when a field is appended, the API_V0 line below keeps naming the old last one. */
#ifndef VKLLM_API_ABI_H
#define VKLLM_API_ABI_H

#include "vkllm.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define API_V0_SIZE(T, last) (offsetof(T, last) + sizeof(((T *)0)->last))

#define API_V0_vkllm_runtime_desc API_V0_SIZE(vkllm_runtime_desc, vk_allocation_callbacks)
#define API_V0_vkllm_vulkan_device API_V0_SIZE(vkllm_vulkan_device, queue_user)
#define API_V0_vkllm_device_info API_V0_SIZE(vkllm_device_info, relaxed_products)
#define API_V0_vkllm_model_desc API_V0_SIZE(vkllm_model_desc, vocab_only)
#define API_V0_vkllm_model_info API_V0_SIZE(vkllm_model_info, file_bytes)
#define API_V0_vkllm_placement API_V0_SIZE(vkllm_placement, device_bytes)
#define API_V0_vkllm_tensor_info API_V0_SIZE(vkllm_tensor_info, nbytes)
#define API_V0_vkllm_session_desc API_V0_SIZE(vkllm_session_desc, n_batch)
#define API_V0_vkllm_generate_desc API_V0_SIZE(vkllm_generate_desc, user)
#define API_V0_vkllm_generate_result API_V0_SIZE(vkllm_generate_result, stop)
#define API_V0_vkllm_engine_desc API_V0_SIZE(vkllm_engine_desc, warmup)
#define API_V0_vkllm_request_desc API_V0_SIZE(vkllm_request_desc, user)
#define API_V0_vkllm_request_result API_V0_SIZE(vkllm_request_result, total_seconds)
#define API_V0_vkllm_engine_stats API_V0_SIZE(vkllm_engine_stats, waiting)
#define API_V0_vkllm_synth_desc API_V0_SIZE(vkllm_synth_desc, allocator)
#define API_V0_vkllm_bench_op_desc API_V0_SIZE(vkllm_bench_op_desc, seconds)
#define API_V0_vkllm_bench_op_result API_V0_SIZE(vkllm_bench_op_result, gflops)
#define API_V0_vkllm_perplexity_desc API_V0_SIZE(vkllm_perplexity_desc, progress_user)
#define API_V0_vkllm_perplexity_result API_V0_SIZE(vkllm_perplexity_result, ppl_base)
#define API_V0_vkllm_imatrix_desc API_V0_SIZE(vkllm_imatrix_desc, progress_user)
#define API_V0_vkllm_prune_desc API_V0_SIZE(vkllm_prune_desc, result)
#define API_V0_vkllm_prune_result API_V0_SIZE(vkllm_prune_result, bytes_out)
#define API_V0_vkllm_quantize_desc API_V0_SIZE(vkllm_quantize_desc, result)
#define API_V0_vkllm_adapter_desc API_V0_SIZE(vkllm_adapter_desc, name)
#define API_V0_vkllm_quantize_result API_V0_SIZE(vkllm_quantize_result, bytes_out)

/* The bytes of a caller's struct this library reads or writes: its struct_size (0: the v0
 * size), never more than the library's own struct. */
static inline size_t api_struct_bytes(uint32_t struct_size, size_t v0, size_t cur) {
    size_t n = struct_size ? struct_size : v0;
    return n < cur ? n : cur;
}

/* Input: *local (the library's layout) gets the caller's fields, defaults (zero) for the rest;
 * a NULL src is all defaults. Returns local. */
static inline void *api_struct_in(const void *src, void *local, size_t v0, size_t cur) {
    memset(local, 0, cur);
    if (src) {
        uint32_t sz;
        memcpy(&sz, src, sizeof sz);
        const size_t n = api_struct_bytes(sz, v0, cur);
        if (n > sizeof sz) memcpy(local, src, n);
    }
    const uint32_t full = (uint32_t)cur;
    memcpy(local, &full, sizeof full);
    return local;
}

/* Output: the caller's struct gets the library's fields that fit its struct_size, and
 * struct_size says how many bytes were written. */
static inline void api_struct_out(void *dst, const void *local, size_t v0, size_t cur) {
    uint32_t sz;
    memcpy(&sz, dst, sizeof sz);
    const size_t n = api_struct_bytes(sz, v0, cur);
    if (n > sizeof sz)
        memcpy((char *)dst + sizeof sz, (const char *)local + sizeof sz, n - sizeof sz);
    const uint32_t wrote = (uint32_t)(n > sizeof sz ? n : sizeof sz);
    memcpy(dst, &wrote, sizeof wrote);
}

/* Shorthands: `const T *d = API_IN(T, desc, &local);` and `API_OUT(T, out, &local);` */
#define API_IN(T, src, local) ((const T *)api_struct_in((src), (local), API_V0_##T, sizeof(T)))
#define API_OUT(T, dst, local) api_struct_out((dst), (local), API_V0_##T, sizeof(T))

#endif
