/* Measurement on the Vulkan backend (vk_bench.c): read bandwidth of device-local memory and
 * the time of one op, for vkllm_bench_bandwidth / vkllm_bench_op through eng_backend_vtbl
 * (vk_backend.c passes its device and op modules in). Internal to src/vk. */
#ifndef VKLLM_VK_VK_BENCH_H
#define VKLLM_VK_VK_BENCH_H

#include "vk/vk.h"
#include "vk/vk_ops.h"

vkllm_status vk_bench_bandwidth(vk_dev *d, double seconds, double *gbps, uint64_t *bytes,
                                core_err *err);
/* desc checked, defaults filled in, w_type resolved (see eng_backend_vtbl.bench_op);
 * n_splits as the backend's attention uses. Sets out->calls and out->us. */
vkllm_status vk_bench_op(vk_dev *d, vk_mm *mm, vk_attn *attn, uint32_t n_splits,
                         const vkllm_bench_op_desc *desc, uint32_t w_type,
                         vkllm_bench_op_result *out, core_err *err);
/* The bandwidth kernel (shaders/bw_read.comp) over `bytes` of data (a multiple of 16, at most
 * the device's buffer limit) uploaded to a device-local buffer: *out gets the XOR of the words
 * it wrote, which must equal the XOR of every 32-bit word of data. For tests. */
vkllm_status vk_bench_read_checksum(vk_dev *d, const void *data, uint64_t bytes, uint32_t *out,
                                    core_err *err);

#endif
