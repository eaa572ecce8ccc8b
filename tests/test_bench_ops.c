/* The measurement API (src/api_bench.c, src/cpu/cpu_bench.c, src/vk/vk_bench.c) on the CPU
 * and Vulkan backends:
 *  - the Vulkan bandwidth kernel (shaders/bw_read.comp) reads every word: its checksum equals
 *    the host's XOR of the buffer, for sizes that do and do not fill its grid evenly;
 *  - vkllm_bench_bandwidth gives a positive figure on both backends;
 *  - vkllm_bench_op runs matmul (q4_0, q4_1, q8_0, f16; 1 and 16 tokens) and attention
 *    (1 and 4 queries) on both, with bytes and flops exactly the header's formulas;
 *  - bad requests get the documented codes and a message that names the problem.
 * ctest sets VKLLM_VK_VALIDATION=1: any validation message fails the Vulkan runs. Timings
 * are not checked (they are the machine's); measuring times are short to keep this quick.
 */
#include "vk_test_util.h"

#include "vk/vk_bench.h"
#include "vkllm.h"

#define SECONDS 0.02

static void log_warn(void *user, vkllm_log_level level, const char *msg) {
    (void)user;
    if (level >= VKLLM_LOG_WARN) fprintf(stderr, "vkllm: %s\n", msg);
}

static vkllm_runtime *open_rt(const char *device) {
    vkllm_runtime_desc rd = {.device = device, .n_threads = 2, .log = log_warn};
    vkllm_runtime *rt = NULL;
    if (vkllm_runtime_create(&rd, &rt) != VKLLM_OK)
        fail_msg("runtime %s: %s", device, vkllm_runtime_last_error(NULL));
    return rt;
}

static const char *const k_devices[] = {"cpu", "vulkan"};

/* The kernel's XOR over `bytes` of random words against the host's. */
static void check_checksum(vk_dev *d, uint64_t bytes) {
    uint32_t *w = malloc(bytes);
    uint32_t want = 0, got = 0;
    for (uint64_t i = 0; i < bytes / 4; i++) {
        w[i] = (uint32_t)(vt_uniform(0.0f, 1.0f) * 4294967040.0f) ^ (uint32_t)(i * 2654435761u);
        want ^= w[i];
    }
    core_err err = {{0}};
    if (vk_bench_read_checksum(d, w, bytes, &got, &err) != VKLLM_OK)
        fail_msg("checksum of %llu bytes: %s", (unsigned long long)bytes, err.msg);
    if (got != want)
        fail_msg("checksum of %llu bytes: kernel %08x, host %08x", (unsigned long long)bytes, got,
                 want);
    free(w);
}

static void test_read_checksum(void **state) {
    (void)state;
    vk_dev *d = vt_dev(0, 0);
    /* one word; a partial grid; the unrolled loop with and without a tail; several
     * iterations per invocation */
    static const uint64_t sizes[] = {16, 16 * 1000, (1u << 20) + 48, 12u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        check_checksum(d, sizes[i]);
    core_err err = {{0}};
    uint32_t x, w[4] = {0};
    assert_int_equal(vk_bench_read_checksum(d, w, 12, &x, &err), VKLLM_ERR_INVALID_ARG);
    vt_dev_done(d);
}

static void test_bandwidth(void **state) {
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        vkllm_runtime *rt = open_rt(k_devices[i]);
        double gbps = 0.0;
        uint64_t bytes = 0;
        if (vkllm_bench_bandwidth(rt, SECONDS, &gbps, &bytes) != VKLLM_OK)
            fail_msg("%s bandwidth: %s", k_devices[i], vkllm_runtime_last_error(rt));
        assert_true(gbps > 0.0 && isfinite(gbps));
        assert_true(bytes >= (16u << 20));
        fprintf(stderr, "%s: %.2f GB/s over %.0f MiB\n", vkllm_runtime_backend_name(rt), gbps,
                (double)bytes / 1048576.0);
        assert_int_equal(vkllm_bench_bandwidth(rt, SECONDS, NULL, NULL), VKLLM_ERR_INVALID_ARG);
        assert_int_equal(vkllm_bench_bandwidth(rt, -1.0, &gbps, NULL), VKLLM_ERR_INVALID_ARG);
        assert_non_null(strstr(vkllm_runtime_last_error(rt), "seconds"));
        vkllm_runtime_destroy(rt);
    }
}

/* A result that is consistent with itself and has the expected bytes and flops. */
static void check_result(const char *what, const vkllm_bench_op_result *r, uint64_t bytes,
                         uint64_t flops) {
    if (r->calls < 1 || !(r->us > 0.0) || !isfinite(r->us))
        fail_msg("%s: %llu calls, %g us", what, (unsigned long long)r->calls, r->us);
    if (r->bytes != bytes || r->flops != flops)
        fail_msg("%s: %llu bytes, %llu flops; expected %llu, %llu", what,
                 (unsigned long long)r->bytes, (unsigned long long)r->flops,
                 (unsigned long long)bytes, (unsigned long long)flops);
    assert_true(fabs(r->gbps - (double)bytes / (r->us * 1e3)) <= 1e-9 * r->gbps + 1e-12);
    assert_true(fabs(r->gflops - (double)flops / (r->us * 1e3)) <= 1e-9 * r->gflops + 1e-12);
}

static void test_matmul(void **state) {
    (void)state;
    static const struct {
        const char *name;
        uint32_t block, block_bytes;
    } types[] = {{"q4_0", 32, 18}, {"q4_1", 32, 20}, {"Q8_0", 32, 34}, {"f16", 1, 2}};
    static const uint32_t tokens[] = {1, 16};
    const uint32_t rows = 256, cols = 512;
    for (size_t i = 0; i < 2; i++) {
        vkllm_runtime *rt = open_rt(k_devices[i]);
        for (size_t t = 0; t < sizeof types / sizeof *types; t++)
            for (size_t k = 0; k < 2; k++) {
                const vkllm_bench_op_desc d = {.op = VKLLM_BENCH_MATMUL,
                                               .type = types[t].name,
                                               .rows = rows,
                                               .cols = cols,
                                               .tokens = tokens[k],
                                               .seconds = SECONDS};
                vkllm_bench_op_result r = {0};
                char what[96];
                snprintf(what, sizeof what, "%s matmul %s x %u", k_devices[i], types[t].name,
                         tokens[k]);
                if (vkllm_bench_op(rt, &d, &r) != VKLLM_OK)
                    fail_msg("%s: %s", what, vkllm_runtime_last_error(rt));
                check_result(what, &r,
                             (uint64_t)rows * (cols / types[t].block) * types[t].block_bytes,
                             2ull * rows * cols * tokens[k]);
                fprintf(stderr, "%s: %.1f us, %.2f GB/s, %.2f GFLOP/s, %llu calls\n", what, r.us,
                        r.gbps, r.gflops, (unsigned long long)r.calls);
            }
        vkllm_runtime_destroy(rt);
    }
}

static void test_attention(void **state) {
    (void)state;
    const uint32_t n_head = 4, n_head_kv = 2, hd = 64, n_kv = 96;
    for (size_t i = 0; i < 2; i++) {
        vkllm_runtime *rt = open_rt(k_devices[i]);
        for (uint32_t tokens = 1; tokens <= 4; tokens += 3) {
            const vkllm_bench_op_desc d = {.op = VKLLM_BENCH_ATTENTION,
                                           .n_head = n_head,
                                           .n_head_kv = n_head_kv,
                                           .head_dim = hd,
                                           .n_kv = n_kv,
                                           .tokens = tokens,
                                           .seconds = SECONDS};
            vkllm_bench_op_result r = {0};
            char what[64];
            snprintf(what, sizeof what, "%s attention x %u", k_devices[i], tokens);
            if (vkllm_bench_op(rt, &d, &r) != VKLLM_OK)
                fail_msg("%s: %s", what, vkllm_runtime_last_error(rt));
            uint64_t keys = 0; /* query t sees positions 0 .. n_kv - tokens + t */
            for (uint32_t t = 0; t < tokens; t++)
                keys += n_kv - tokens + t + 1;
            check_result(what, &r, 2ull * n_kv * n_head_kv * hd * 2, 4ull * n_head * hd * keys);
        }
        vkllm_runtime_destroy(rt);
    }
}

/* The request, the status it must get, and a word the message must hold. */
static void expect(vkllm_runtime *rt, const vkllm_bench_op_desc *d, vkllm_status want,
                   const char *word) {
    vkllm_bench_op_result r = {0};
    const vkllm_status st = vkllm_bench_op(rt, d, &r);
    const char *msg = vkllm_runtime_last_error(rt);
    if (st != want || !strstr(msg, word))
        fail_msg("%s: status %d (want %d), message '%s' (want '%s' in it)",
                 vkllm_runtime_backend_name(rt), st, want, msg, word);
}

static void test_errors(void **state) {
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        vkllm_runtime *rt = open_rt(k_devices[i]);
        const vkllm_bench_op_desc mm = {
            .op = VKLLM_BENCH_MATMUL, .type = "q4_0", .rows = 64, .cols = 256, .seconds = SECONDS};
        vkllm_bench_op_desc d = mm;
        d.type = "q9_9";
        expect(rt, &d, VKLLM_ERR_INVALID_ARG, "q9_9");
        d = mm;
        d.cols = 500;
        expect(rt, &d, VKLLM_ERR_INVALID_ARG, "500");
        d = mm;
        d.rows = 0;
        expect(rt, &d, VKLLM_ERR_INVALID_ARG, "0 x 256");
        d = mm;
        d.op = (vkllm_bench_op_kind)7;
        expect(rt, &d, VKLLM_ERR_INVALID_ARG, "op 7");
        d = mm;
        d.type = "iq2_xxs"; /* a known type without kernels */
        expect(rt, &d, VKLLM_ERR_UNSUPPORTED, "iq2_xxs");
        d = mm;
        d.type = "f32";
        d.rows = d.cols = 65536; /* 16 GiB */
        expect(rt, &d, VKLLM_ERR_OUT_OF_MEMORY, "MiB");
        d = mm;
        d.tokens = 40000;
        d.rows = d.cols = 16384; /* 2.4 GiB of activations */
        expect(rt, &d, VKLLM_ERR_OUT_OF_MEMORY, "activations");
        const vkllm_bench_op_desc at = {.op = VKLLM_BENCH_ATTENTION,
                                        .n_head = 4,
                                        .n_head_kv = 2,
                                        .head_dim = 64,
                                        .n_kv = 32,
                                        .seconds = SECONDS};
        d = at;
        d.tokens = 33;
        expect(rt, &d, VKLLM_ERR_INVALID_ARG, "33 queries");
        d = at;
        d.n_head = 3;
        expect(rt, &d, VKLLM_ERR_INVALID_ARG, "3 query heads");
        d = at;
        d.n_kv = 1u << 28; /* 2 GiB of K and V */
        expect(rt, &d, VKLLM_ERR_OUT_OF_MEMORY, "cache");
        if (i == 1) { /* the Vulkan kernels need an even head_dim */
            d = at;
            d.head_dim = 63;
            expect(rt, &d, VKLLM_ERR_UNSUPPORTED, "head_dim 63");
        }
        assert_int_equal(vkllm_bench_op(rt, NULL, NULL), VKLLM_ERR_INVALID_ARG);
        /* the runtime still measures after the failures */
        vkllm_bench_op_result r = {0};
        d = mm;
        d.tokens = 2; /* one copy of the weights: quick */
        assert_int_equal(vkllm_bench_op(rt, &d, &r), VKLLM_OK);
        assert_true(r.calls >= 1);
        vkllm_runtime_destroy(rt);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_checksum), cmocka_unit_test(test_bandwidth),
        cmocka_unit_test(test_matmul),        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
