/* The fuzz target's seed corpus (tests/data/serve_corpus: valid and near-valid request bodies,
 * and every reproducer the fuzzer found) replayed through tests/fuzz/fuzz_serve_parse.c's
 * LLVMFuzzerTestOneInput in every test build, the ASan+UBSan one included, with no libFuzzer:
 * each file whole and cut at every length, through the chat, completion, tokenize and
 * detokenize parsers and the text helpers, with the target's own checks (a refusal is a 400
 * with a valid error object, an accepted request keeps its limits). The long fuzz runs are
 * scripts/fuzz_serve.sh; this keeps what they found. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/fuzz/fuzz_serve_parse.c"

#include <dirent.h>
#include <sys/stat.h>

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(len >= 0);
    unsigned char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void test_corpus_replay(void **state) {
    (void)state;
    const char *data = getenv("VKLLM_TEST_DATA");
    if (!data) fail_msg("VKLLM_TEST_DATA is not set (ctest sets it: tests/CMakeLists.txt)");
    char dir[4096], path[8192];
    snprintf(dir, sizeof dir, "%s/serve_corpus", data);
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s", dir);
    size_t files = 0, inputs = 0, bytes = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        size_t n = 0;
        unsigned char *b = read_all(path, &n);
        g_fuzz_input = path;
        /* every prefix: the near-valid bodies a client cut short, as the fuzzer's mutations */
        for (size_t k = 0; k <= n; k++) {
            /* a copy of exactly k bytes, so that ASan sees any read past the body's end */
            unsigned char *cut = malloc(k ? k : 1);
            assert_non_null(cut);
            memcpy(cut, b, k);
            LLVMFuzzerTestOneInput(cut, k);
            free(cut);
            inputs++;
        }
        free(b);
        files++;
        bytes += n;
    }
    closedir(d);
    g_fuzz_input = "";
    print_message("replayed %zu corpus files (%zu bytes) as %zu inputs\n", files, bytes, inputs);
    /* the committed seeds are ~40 files: far fewer means the folder is not the corpus */
    assert_true(files >= 30);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus_replay)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
