/* Shared by every module: error messages, the allocator, small helpers.
 *
 * Library code never prints, exits or aborts: it returns a vkllm_status and writes what went
 * wrong into a core_err. Host memory goes through core_alloc/core_free with the caller's
 * vkllm_allocator (NULL = the C library). Must not include anything above src/core.
 */
#ifndef VKLLM_CORE_COMMON_H
#define VKLLM_CORE_COMMON_H

#include "vkllm.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CORE_ERR_LEN 512

/* An error message buffer kept by each object (model, session, runtime). */
typedef struct core_err {
    char msg[CORE_ERR_LEN];
} core_err;

#if defined(__GNUC__)
#define CORE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CORE_PRINTF(a, b)
#endif

/* Formats the message into err (if err is non-NULL) and returns st. */
vkllm_status core_errf(core_err *err, vkllm_status st, const char *fmt, ...) CORE_PRINTF(3, 4);
void core_err_clear(core_err *err);

/* Allocation with the caller's callbacks (a may be NULL). Alignment is a power of two;
 * 0 means 16. Returns NULL on failure or on a zero-size request. */
void *core_alloc(const vkllm_allocator *a, size_t size, size_t alignment);
void *core_calloc(const vkllm_allocator *a, size_t n, size_t size);
void core_free(const vkllm_allocator *a, void *p);
char *core_strdup(const vkllm_allocator *a, const char *s);

/* Overflow-checked size arithmetic: returns false on overflow. */
static inline bool core_mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > UINT64_MAX / a) return false;
    *out = a * b;
    return true;
}
static inline bool core_add_ok(uint64_t a, uint64_t b, uint64_t *out) {
    if (b > UINT64_MAX - a) return false;
    *out = a + b;
    return true;
}

/* Monotonic clock, seconds. */
double core_time_s(void);

/* fp16 / bf16 <-> fp32 (IEEE, round to nearest even). */
float core_fp16_to_fp32(uint16_t h);
uint16_t core_fp32_to_fp16(float f);
float core_bf16_to_fp32(uint16_t h);
uint16_t core_fp32_to_bf16(float f);

#endif
