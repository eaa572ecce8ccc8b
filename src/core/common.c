/* Error messages, allocation through the user's callbacks, half-precision conversion, clock.
 * No state of its own. */
#define _POSIX_C_SOURCE 200809L
#include "core/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

vkllm_status core_errf(core_err *err, vkllm_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}

void core_err_clear(core_err *err) {
    if (err) err->msg[0] = '\0';
}

void *core_alloc(const vkllm_allocator *a, size_t size, size_t alignment) {
    if (size == 0) return NULL;
    if (alignment < 16) alignment = 16;
    if (a && a->alloc) return a->alloc(a->user, size, alignment);
    /* aligned_alloc wants a size that is a multiple of the alignment */
    size_t rounded = (size + alignment - 1) & ~(alignment - 1);
    if (rounded < size) return NULL;
    return aligned_alloc(alignment, rounded);
}

void *core_calloc(const vkllm_allocator *a, size_t n, size_t size) {
    uint64_t total;
    if (!core_mul_ok(n, size, &total) || total > SIZE_MAX) return NULL;
    void *p = core_alloc(a, (size_t)total, 0);
    if (p) memset(p, 0, (size_t)total);
    return p;
}

void core_free(const vkllm_allocator *a, void *p) {
    if (!p) return;
    if (a && a->alloc) {
        if (a->free) a->free(a->user, p);
        return;
    }
    free(p);
}

char *core_strdup(const vkllm_allocator *a, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = core_alloc(a, n, 0);
    if (p) memcpy(p, s, n);
    return p;
}

double core_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

float core_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t core_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* result is subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t man = (absx & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(absx >> 23); /* 14..24: value = man * 2^(e-150), half ulp 2^-24 */
        uint32_t half = 1u << (shift - 1);
        uint32_t r = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((absx >> 13) - ((127 - 15) << 10));
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

float core_bf16_to_fp32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t core_fp32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
