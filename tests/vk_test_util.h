/* Shared by the Vulkan op tests (tests/test_vk_*.c): a device per capability tier with the
 * validation layer on (ctest sets VKLLM_VK_VALIDATION=1; any validation message fails the
 * test), buffers filled from the host, a one-shot recording, and the error measure.
 *
 * Error measure (ggml test-backend-ops' NMSE): sum((a - b)^2) / sum(b^2), b the CPU reference.
 */
#ifndef VKLLM_TESTS_VK_TEST_UTIL_H
#define VKLLM_TESTS_VK_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk/vk.h"
#include "vk/vk_ops.h"

/* A float's bits, to compare results that must be identical (NaN == NaN, -0 != +0). */
static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline void vt_log(void *user, vkllm_log_level level, const char *msg) {
    (void)user;
    if (level >= VKLLM_LOG_WARN) fprintf(stderr, "vk: %s\n", msg);
}

/* The lowest tier the op tests run. Under the sanitizers what they check is host code
 * (recording, buffers, parameters), the same at every tier: the tiers differ in their shaders,
 * which lavapipe runs uninstrumented and the release pass compares at every tier. So those
 * builds run the best tier only, and the sanitizer pass stays short. */
#ifdef VKLLM_TEST_SANITIZED
#define VT_FIRST_TIER (VK_TIER_COUNT - 1)
#else
#define VT_FIRST_TIER 0
#endif

/* A device limited to tier `tier`; fails the test if the device cannot offer that tier (on
 * lavapipe every tier exists) or validation was asked for and is not available. */
static inline vk_dev *vt_dev(int tier, uint64_t max_buffer) {
    const char *v = getenv("VKLLM_VK_VALIDATION");
    if (!v || strcmp(v, "1") != 0)
        fprintf(stderr, "note: VKLLM_VK_VALIDATION is not 1: validation layer off\n");
    vk_dev_desc dd = {
        .log = vt_log, .select = "vulkan", .max_tier = tier, .max_buffer = max_buffer};
    core_err err = {{0}};
    vk_dev *d = NULL;
    vkllm_status st = vk_dev_create(&dd, &d, &err);
    if (st != VKLLM_OK) fail_msg("vk_dev_create: %s", err.msg);
    if (d->tier != tier)
        fail_msg("device %s has tier %d, test needs %d", d->info.name, d->tier, tier);
    return d;
}

/* Fails the test on any validation message, then destroys the device. */
static inline void vt_dev_done(vk_dev *d) {
    core_err err = {{0}};
    if (vk_check_validation(d, &err) != VKLLM_OK) fail_msg("%s", err.msg);
    vk_dev_destroy(d);
}

/* A device-local slice of `bytes`, filled from host (or zeroed when host is NULL). */
static inline vk_slice vt_slice(vk_arena *a, const void *host, uint64_t bytes) {
    core_err err = {{0}};
    vk_slice s;
    if (vk_arena_alloc(a, bytes, &s, &err) != VKLLM_OK) fail_msg("alloc: %s", err.msg);
    void *zero = NULL;
    if (!host) host = zero = calloc(1, bytes ? bytes : 1);
    if (vk_upload(a->d, &s, host, bytes, &err) != VKLLM_OK) fail_msg("upload: %s", err.msg);
    free(zero);
    return s;
}

static inline void vt_read(vk_dev *d, const vk_slice *s, void *host, uint64_t bytes) {
    core_err err = {{0}};
    if (vk_download(d, s, host, bytes, &err) != VKLLM_OK) fail_msg("download: %s", err.msg);
}

/* Begin / end+submit+wait of a one-shot recording. */
static inline void vt_begin(vk_dev *d, vk_rec *r) {
    core_err err = {{0}};
    if (vk_rec_init(d, r, 256, &err) != VKLLM_OK) fail_msg("%s", err.msg);
    if (vk_rec_begin(r, &err) != VKLLM_OK) fail_msg("%s", err.msg);
}

static inline void vt_submit(vk_rec *r) {
    core_err err = {{0}};
    if (vk_rec_end(r, &err) != VKLLM_OK) fail_msg("%s", err.msg);
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkFence f;
    r->d->t.vkCreateFence(r->d->dev, &fi, NULL, &f);
    vkllm_status st = vk_rec_submit_wait(r, f, &err);
    r->d->t.vkDestroyFence(r->d->dev, f, NULL);
    vk_rec_free(r);
    if (st != VKLLM_OK) fail_msg("%s", err.msg);
}

static inline double vt_nmse(const float *got, const float *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)got[i] - (double)ref[i];
        num += e * e;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0.0 ? num / den : num;
}

/* Deterministic uniform floats in [lo, hi). */
static uint64_t vt_rng = 0x9e3779b97f4a7c15ull;
static inline float vt_uniform(float lo, float hi) {
    vt_rng ^= vt_rng << 13;
    vt_rng ^= vt_rng >> 7;
    vt_rng ^= vt_rng << 17;
    return lo + (hi - lo) * (float)((vt_rng >> 40) / (double)(1ull << 24));
}
static inline void vt_fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = vt_uniform(lo, hi);
}

#endif
