/* The ABI rules of vkllm.h ("versions and the ABI"): the version query, and struct_size on
 * every desc, info and result struct. A host compiled against an older header passes shorter
 * structs (the library must neither read nor write past struct_size); a newer one passes
 * longer ones (the library fills what it knows). Garbage past struct_size stands for fields
 * the caller's header does not have: reading any of it would crash or change the result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vkllm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JUNK 0xa5

static void test_version(void **state) {
    (void)state;
    const uint32_t v = vkllm_version();
    assert_int_equal(v, VKLLM_VERSION);
    assert_int_equal(VKLLM_VERSION_GET_MAJOR(v), VKLLM_VERSION_MAJOR);
    assert_int_equal(VKLLM_VERSION_GET_MINOR(v), VKLLM_VERSION_MINOR);
    assert_int_equal(VKLLM_VERSION_GET_PATCH(v), VKLLM_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d (git ", VKLLM_VERSION_MAJOR, VKLLM_VERSION_MINOR,
             VKLLM_VERSION_PATCH);
    assert_memory_equal(vkllm_version_string(), want, strlen(want));
}

/* A desc that ends before `device`: the junk where device, cpu_isa and vk_device would be
 * (pointers) must not be read. */
static void test_short_desc(void **state) {
    (void)state;
    vkllm_runtime_desc d;
    memset(&d, JUNK, sizeof d);
    d.struct_size = (uint32_t)offsetof(vkllm_runtime_desc, device);
    memset(&d.allocator, 0, sizeof d.allocator);
    d.log = NULL;
    d.log_user = NULL;
    d.log_level = VKLLM_LOG_NONE;
    d.n_threads = 1;
    vkllm_runtime *rt = NULL;
    if (vkllm_runtime_create(&d, &rt) != VKLLM_OK)
        fail_msg("short desc: %s", vkllm_runtime_last_error(NULL));
    vkllm_device_info di = {0};
    vkllm_runtime_device(rt, &di);
    /* zero: the whole v0 struct written, to the end of its last field */
    assert_int_equal(di.struct_size, offsetof(vkllm_device_info, relaxed_products) + 1);
    assert_true(strcmp(di.backend, "cpu") == 0 || strcmp(di.backend, "vulkan") == 0);
    vkllm_runtime_destroy(rt);
}

/* An info struct shorter than the library's: only its bytes are written. */
static void test_short_info(void **state) {
    (void)state;
    vkllm_model_info mi;
    memset(&mi, JUNK, sizeof mi);
    mi.struct_size = (uint32_t)offsetof(vkllm_model_info, n_ctx_train);
    assert_true(vkllm_synth_shape_info("llama-3.2-1b", &mi));
    assert_int_equal(mi.struct_size, offsetof(vkllm_model_info, n_ctx_train));
    assert_string_equal(mi.architecture, "llama");
    assert_int_equal(mi.n_vocab, 128256);
    const unsigned char *p = (const unsigned char *)&mi;
    for (size_t i = offsetof(vkllm_model_info, n_ctx_train); i < sizeof mi; i++)
        if (p[i] != JUNK) fail_msg("byte %zu past struct_size was written", i);
    /* zero: the v0 struct, all of it */
    memset(&mi, JUNK, sizeof mi);
    mi.struct_size = 0;
    assert_true(vkllm_synth_shape_info("llama-3.2-1b", &mi));
    assert_int_equal(mi.struct_size, sizeof mi);
    assert_int_equal(mi.n_layer, 16);
    assert_int_equal(mi.file_bytes, 0);
}

/* The device list strides by the caller's struct_size: a newer header's longer struct keeps
 * its extra bytes, an older one's shorter struct gets only its own. */
typedef struct newer_info {
    vkllm_device_info info;
    unsigned char extra[40]; /* fields this library does not know */
} newer_info;

static void test_device_list_stride(void **state) {
    (void)state;
    size_t n = 0;
    assert_int_equal(vkllm_list_devices(NULL, 0, &n), VKLLM_OK);
    assert_true(n >= 1);
    newer_info *big = malloc(n * sizeof *big);
    assert_non_null(big);
    memset(big, JUNK, n * sizeof *big);
    big[0].info.struct_size = sizeof(newer_info);
    size_t n2 = 0;
    assert_int_equal(vkllm_list_devices(&big[0].info, n, &n2), VKLLM_OK);
    assert_int_equal(n2, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(big[i].info.struct_size, sizeof(vkllm_device_info));
        assert_true(strcmp(big[i].info.backend, i == 0 ? "cpu" : "vulkan") == 0);
        for (size_t k = 0; k < sizeof big[i].extra; k++)
            if (big[i].extra[k] != JUNK) fail_msg("device %zu: extra byte %zu written", i, k);
    }
    free(big);
    /* older: only up to `backend` */
    const size_t old = offsetof(vkllm_device_info, features);
    unsigned char *small = malloc(n * old + 64);
    assert_non_null(small);
    memset(small, JUNK, n * old + 64);
    const uint32_t sz = (uint32_t)old;
    memcpy(small, &sz, sizeof sz);
    assert_int_equal(vkllm_list_devices((vkllm_device_info *)(void *)small, n, &n2), VKLLM_OK);
    for (size_t i = 0; i < n; i++) {
        vkllm_device_info got;
        memset(&got, 0, sizeof got);
        memcpy(&got, small + i * old, old);
        assert_int_equal(got.struct_size, old);
        assert_true(strcmp(got.backend, i == 0 ? "cpu" : "vulkan") == 0);
    }
    for (size_t k = n * old; k < n * old + 64; k++)
        if (small[k] != JUNK) fail_msg("byte %zu past the array was written", k);
    free(small);
    /* a struct_size too small to hold struct_size itself is refused */
    vkllm_device_info bad = {.struct_size = 2};
    assert_int_equal(vkllm_list_devices(&bad, 1, &n2), VKLLM_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_short_desc),
        cmocka_unit_test(test_short_info),
        cmocka_unit_test(test_device_list_stride),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
