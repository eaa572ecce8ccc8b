/* Tests of loader/tokenizer.c and its helpers (tok_*.c, unicode.c): vkllm's ids must equal
 * llama.cpp's for the same file and text.
 *
 * Golden data: tests/data/golden/tokens_<vocab>.txt (llama.cpp's ids for the strings of
 * tests/data/golden/token_strings.txt, written by tools/golden/make_token_golden.sh) for the
 * default model and llama.cpp's vocab-only files, and llama.cpp's own test strings
 * (ggml-vocab-*.gguf.inp/.out beside those files). Also: vocab facts (BOS, EOS, EOG,
 * attributes, every token's piece, by hash), detokenization round trips, special-token
 * parsing on and off, invalid UTF-8, empty input, a too-small buffer, an unknown
 * pre-tokenizer, and the speed of a long text. Missing data fails, naming the script that
 * provides it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "loader/gguf.h"
#include "loader/tok_internal.h"
#include "loader/tokenizer.h"
#include "loader/unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------------------------- */

typedef struct bytes {
    char *p;
    size_t n;
} bytes;

static bytes read_file(const char *path) {
    bytes b = {NULL, 0};
    FILE *fp = fopen(path, "rb");
    if (!fp) return b;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    b.p = malloc((size_t)sz + 1);
    if (b.p && fread(b.p, 1, (size_t)sz, fp) == (size_t)sz) {
        b.n = (size_t)sz;
        b.p[sz] = '\0';
    } else {
        free(b.p);
        b.p = NULL;
    }
    fclose(fp);
    return b;
}

typedef struct vocab_case {
    const char *name; /* golden file stem */
    const char *file; /* ggml-vocab file in VKLLM_VOCAB_DIR, or NULL for VKLLM_MODEL */
    gguf_file *f;
    tok_vocab *v;
    const char *pre; /* if set: a copy of the file with this tokenizer.ggml.pre */
    char tmp[64];
} vocab_case;

static const char *model_path(void) {
    const char *p = getenv("VKLLM_MODEL");
    if (!p || access(p, R_OK) != 0) {
        fail_msg("default model missing (VKLLM_MODEL=%s): run scripts/fetch_model.sh",
                 p ? p : "(unset)");
    }
    return p;
}

static const char *vocab_path(const char *file) {
    static char path[1024];
    const char *dir = getenv("VKLLM_VOCAB_DIR");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "(VKLLM_VOCAB_DIR unset)", file);
    if (access(path, R_OK) != 0) fail_msg("%s missing: run scripts/fetch_vocabs.sh", path);
    return path;
}

static const char *data_path(const char *rel) {
    static char path[1024];
    const char *dir = getenv("VKLLM_TEST_DATA");
    if (!dir) fail_msg("VKLLM_TEST_DATA not set (ctest sets it)");
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (access(path, R_OK) != 0) {
        fail_msg("%s missing: run tools/golden/make_token_golden.sh", path);
    }
    return path;
}

/* A copy of src with tokenizer.ggml.pre replaced, written with our GGUF writer into a
 * temporary file (path in c->tmp). */
static void write_pre_variant(vocab_case *c, const gguf_file *src) {
    gguf_writer *w = gguf_writer_create(NULL);
    assert_non_null(w);
    assert_int_equal(gguf_writer_copy_kvs(w, src), VKLLM_OK);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.pre", c->pre), VKLLM_OK);
    snprintf(c->tmp, sizeof c->tmp, "/tmp/vkllm_tok_pre_XXXXXX");
    int fd = mkstemp(c->tmp);
    assert_true(fd >= 0);
    close(fd);
    core_err err = {{0}};
    if (gguf_writer_write(w, c->tmp, &err) != VKLLM_OK) fail_msg("writer: %s", err.msg);
    gguf_writer_free(w);
}

static void open_case(vocab_case *c) {
    const char *path = c->file ? vocab_path(c->file) : model_path();
    core_err err = {{0}};
    gguf_open_desc d = {.vocab_only = true};
    vkllm_status st = gguf_open(path, &d, &c->f, &err);
    if (st != VKLLM_OK) fail_msg("%s: %s", path, err.msg);
    if (c->pre) {
        write_pre_variant(c, c->f);
        gguf_close(c->f);
        path = c->tmp;
        if (gguf_open(path, &d, &c->f, &err) != VKLLM_OK) fail_msg("%s: %s", path, err.msg);
    }
    st = tok_load(c->f, NULL, &c->v, &err);
    if (st != VKLLM_OK) fail_msg("tok_load %s: %s", path, err.msg);
}

static void close_case(vocab_case *c) {
    tok_free(c->v);
    gguf_close(c->f);
    if (c->pre) unlink(c->tmp);
    c->v = NULL;
    c->f = NULL;
}

/* Tokenizes into a malloc'd array; *n gets the count. */
static int32_t *encode(const tok_vocab *v, const char *s, size_t len, bool add_special,
                       bool parse_special, size_t *n) {
    core_err err = {{0}};
    size_t need = 0;
    vkllm_status st = tok_encode(v, s, len, add_special, parse_special, NULL, 0, &need, &err);
    assert_true(st == VKLLM_OK || st == VKLLM_ERR_BUFFER_TOO_SMALL);
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    st = tok_encode(v, s, len, add_special, parse_special, ids, need, n, &err);
    if (st != VKLLM_OK) fail_msg("tok_encode: %s", err.msg);
    assert_int_equal(*n, need);
    return ids;
}

/* Concatenated pieces; for SentencePiece vocabs one leading space is dropped, as
 * llama_detokenize does. Returns a malloc'd string, *n its length. */
static char *decode(const tok_vocab *v, const int32_t *ids, size_t n_ids, bool special, size_t *n) {
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++)
        total += tok_piece(v, ids[i], special, NULL, 0);
    char *out = malloc(total + 1), *p = out;
    for (size_t i = 0; i < n_ids; i++)
        p += tok_piece(v, ids[i], special, p, total - (size_t)(p - out));
    *n = total;
    if (tok_add_space_prefix(v) && total > 0 && out[0] == ' ') {
        memmove(out, out + 1, total - 1);
        *n = total - 1;
    }
    out[*n] = '\0';
    return out;
}

/* Parses "1 2 3" into ids; returns the count. */
static size_t parse_ids(const char *s, int32_t *ids, size_t cap) {
    size_t n = 0;
    char *end;
    for (;;) {
        long x = strtol(s, &end, 10);
        if (end == s) break;
        if (n < cap) ids[n] = (int32_t)x;
        n++;
        s = end;
    }
    return n;
}

static void expect_ids(const char *what, const int32_t *got, size_t n_got, const int32_t *want,
                       size_t n_want, int *failures) {
    if (n_got == n_want && memcmp(got, want, n_got * sizeof *got) == 0) return;
    (*failures)++;
    fprintf(stderr, "MISMATCH %s\n  want:", what);
    for (size_t i = 0; i < n_want; i++)
        fprintf(stderr, " %d", want[i]);
    fprintf(stderr, "\n  got: ");
    for (size_t i = 0; i < n_got; i++)
        fprintf(stderr, " %d", got[i]);
    fprintf(stderr, "\n");
}

/* ---- the golden strings ----------------------------------------------------------------- */

#define MAX_STRINGS 256

typedef struct golden_strings {
    bytes file;
    char *s[MAX_STRINGS];
    size_t len[MAX_STRINGS];
    size_t n;
} golden_strings;

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* token_strings.txt: one C-style quoted string per record line (see its header). Decoded in
 * place. */
static void load_strings(golden_strings *g) {
    g->file = read_file(data_path("golden/token_strings.txt"));
    assert_non_null(g->file.p);
    g->n = 0;
    for (char *line = g->file.p; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (line[0] == '"') {
            size_t L = strlen(line);
            assert_true(L >= 2 && line[L - 1] == '"');
            char *w = line, *r = line + 1, *end = line + L - 1;
            while (r < end) {
                if (*r != '\\') {
                    *w++ = *r++;
                    continue;
                }
                char e = r[1];
                if (e == 'x') {
                    *w++ = (char)(hexval(r[2]) * 16 + hexval(r[3]));
                    r += 4;
                    continue;
                }
                *w++ = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                r += 2;
            }
            assert_true(g->n < MAX_STRINGS);
            g->s[g->n] = line;
            g->len[g->n] = (size_t)(w - line);
            g->n++;
        }
        line = nl ? nl + 1 : NULL;
    }
    assert_true(g->n >= 40);
}

/* FNV-1a 64 over (id, length, piece) of every token, as the golden script computes it. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t pieces_hash(const tok_vocab *v, bool special) {
    uint64_t h = 0xcbf29ce484222325ull;
    static char buf[1 << 16];
    for (int32_t i = 0; i < (int32_t)tok_n_vocab(v); i++) {
        uint32_t len = (uint32_t)tok_piece(v, i, special, buf, sizeof buf);
        h = fnv(h, &i, 4);
        h = fnv(h, &len, 4);
        h = fnv(h, buf, len);
    }
    return h;
}

/* Checks one vocab against its golden file: every string in both modes, the metadata facts,
 * the piece hashes and round trips. */
static void check_golden(vocab_case *c) {
    golden_strings g;
    load_strings(&g);
    open_case(c);
    char rel[256];
    snprintf(rel, sizeof rel, "golden/tokens_%s.txt", c->name);
    bytes gold = read_file(data_path(rel));
    assert_non_null(gold.p);

    static int32_t want[1 << 16];
    int failures = 0, matched[2] = {0, 0}, total[2] = {0, 0}, rt_checked = 0;
    for (char *line = gold.p; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char key[64];
        unsigned idx;
        if (line[0] == '#') {
            /* comment */
        } else if (sscanf(line, "meta %63s", key) == 1) {
            const char *val = line + 5 + strlen(key);
            if (strcmp(key, "n_vocab") == 0) assert_int_equal(tok_n_vocab(c->v), atol(val));
            if (strcmp(key, "bos") == 0) assert_int_equal(tok_bos(c->v), atol(val));
            if (strcmp(key, "eos") == 0) assert_int_equal(tok_eos(c->v), atol(val));
            if (strcmp(key, "add_bos") == 0) assert_int_equal(tok_add_bos(c->v), atol(val));
            if (strcmp(key, "add_eos") == 0) assert_int_equal(tok_add_eos(c->v), atol(val));
            if (strcmp(key, "eog") == 0) {
                size_t n = parse_ids(val, want, 1 << 16), k = 0;
                for (int32_t i = 0; i < (int32_t)tok_n_vocab(c->v); i++) {
                    if (!tok_is_eog(c->v, i)) continue;
                    if (k >= n || want[k] != i)
                        fail_msg("%s: eog %d not in llama.cpp's set", c->name, i);
                    k++;
                }
                assert_int_equal(k, n);
            }
            if (strcmp(key, "attrs") == 0) {
                /* Every token not listed is NORMAL in llama.cpp. */
                const tok_vocab *v = c->v;
                uint16_t *want_attr = malloc(tok_n_vocab(v) * sizeof *want_attr);
                for (uint32_t i = 0; i < tok_n_vocab(v); i++)
                    want_attr[i] = TOK_ATTR_NORMAL;
                for (const char *p = val; *p;) {
                    char *e;
                    long id = strtol(p, &e, 10);
                    if (e == p) break;
                    long a = strtol(e + 1, &e, 10);
                    want_attr[id] = (uint16_t)a;
                    p = e;
                }
                for (uint32_t i = 0; i < tok_n_vocab(v); i++) {
                    if (v->attr[i] != want_attr[i]) {
                        fail_msg("%s: token %u attr %d, llama.cpp %d", c->name, i, v->attr[i],
                                 want_attr[i]);
                    }
                }
                free(want_attr);
            }
            if (strncmp(key, "pieces_", 7) == 0) {
                bool special = strcmp(key, "pieces_special") == 0;
                unsigned long long want_h = strtoull(val, NULL, 16);
                uint64_t got_h = pieces_hash(c->v, special);
                if (got_h != want_h) {
                    fail_msg("%s: %s hash %016llx, llama.cpp %016llx", c->name, key,
                             (unsigned long long)got_h, want_h);
                }
            }
        } else if (sscanf(line, "%u %63s", &idx, key) == 2) {
            assert_true(idx < g.n);
            const char *val = strstr(line, key) + strlen(key);
            if (strcmp(key, "special") == 0 || strcmp(key, "plain") == 0) {
                int mode = strcmp(key, "plain") == 0;
                size_t n_want = parse_ids(val, want, 1 << 16), n_got;
                /* llama-tokenize adds BOS/EOS exactly when the vocab adds BOS. */
                bool add_special = mode == 0 && tok_add_bos(c->v);
                int32_t *got = encode(c->v, g.s[idx], g.len[idx], add_special, mode == 0, &n_got);
                char what[128];
                snprintf(what, sizeof what, "%s string %u (%s)", c->name, idx, key);
                int before = failures;
                expect_ids(what, got, n_got, want, n_want, &failures);
                matched[mode] += failures == before;
                total[mode]++;
                free(got);
            } else if (strcmp(key, "rt") == 0 && atoi(val) == 1) {
                size_t n_ids, n_txt;
                int32_t *ids = encode(c->v, g.s[idx], g.len[idx], false, false, &n_ids);
                char *txt = decode(c->v, ids, n_ids, false, &n_txt);
                if (n_txt != g.len[idx] || memcmp(txt, g.s[idx], n_txt) != 0) {
                    failures++;
                    fprintf(stderr, "ROUND TRIP %s string %u: got \"%s\"\n", c->name, idx, txt);
                }
                rt_checked++;
                free(ids);
                free(txt);
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    printf("%s: special %d/%d, plain %d/%d strings match llama.cpp; %d round trips checked\n",
           c->name, matched[0], total[0], matched[1], total[1], rt_checked);
    assert_int_equal(total[0], (int)g.n);
    assert_int_equal(total[1], (int)g.n);
    assert_int_equal(failures, 0);
    free(gold.p);
    free(g.file.p);
    close_case(c);
}

static void test_golden_smollm2(void **state) {
    (void)state;
    vocab_case c = {.name = "smollm2", .file = NULL};
    check_golden(&c);
}
static void test_golden_llama_spm(void **state) {
    (void)state;
    vocab_case c = {.name = "llama-spm", .file = "ggml-vocab-llama-spm.gguf"};
    check_golden(&c);
}
static void test_golden_llama_bpe(void **state) {
    (void)state;
    vocab_case c = {.name = "llama-bpe", .file = "ggml-vocab-llama-bpe.gguf"};
    check_golden(&c);
}
static void test_golden_gpt2_default(void **state) {
    (void)state;
    vocab_case c = {.name = "gpt-2-default", .file = "ggml-vocab-gpt-2.gguf", .pre = "default"};
    check_golden(&c);
}
static void test_golden_gpt2_qwen2(void **state) {
    (void)state;
    vocab_case c = {.name = "gpt-2-qwen2", .file = "ggml-vocab-gpt-2.gguf", .pre = "qwen2"};
    check_golden(&c);
}
static void test_golden_gpt2(void **state) {
    (void)state;
    vocab_case c = {.name = "gpt-2", .file = "ggml-vocab-gpt-2.gguf"};
    check_golden(&c);
}

/* ---- llama.cpp's own test strings (.inp/.out): no BOS, special tokens not parsed ---- */

static void check_inp_out(const char *file) {
    vocab_case c = {.name = file, .file = file};
    open_case(&c);
    char inp_path[1100], out_path[1100];
    snprintf(inp_path, sizeof inp_path, "%s.inp", vocab_path(file));
    snprintf(out_path, sizeof out_path, "%s.out", vocab_path(file));
    bytes inp = read_file(inp_path), out = read_file(out_path);
    if (!inp.p || !out.p) fail_msg("%s(.inp/.out) missing: run scripts/fetch_vocabs.sh", file);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    static int32_t want[1 << 16];
    int failures = 0, n_tests = 0;
    char *s = inp.p, *o = out.p;
    while ((size_t)(s - inp.p) < inp.n) {
        char *next = strstr(s, sep);
        size_t len = next ? (size_t)(next - s) : inp.n - (size_t)(s - inp.p);
        char *onl = strchr(o, '\n');
        assert_non_null(onl);
        *onl = '\0';
        size_t n_want = parse_ids(o, want, 1 << 16), n_got;
        int32_t *got = encode(c.v, s, len, false, false, &n_got);
        char what[128];
        snprintf(what, sizeof what, "%s.inp test %d", file, n_tests);
        expect_ids(what, got, n_got, want, n_want, &failures);
        free(got);
        n_tests++;
        o = onl + 1;
        if (!next) break;
        s = next + strlen(sep);
    }
    printf("%s.inp: %d/%d match llama.cpp\n", file, n_tests - failures, n_tests);
    assert_true(n_tests > 10);
    assert_int_equal(failures, 0);
    free(inp.p);
    free(out.p);
    close_case(&c);
}

static void test_inp_out_llama_spm(void **state) {
    (void)state;
    check_inp_out("ggml-vocab-llama-spm.gguf");
}
static void test_inp_out_llama_bpe(void **state) {
    (void)state;
    check_inp_out("ggml-vocab-llama-bpe.gguf");
}
static void test_inp_out_gpt2(void **state) {
    (void)state;
    check_inp_out("ggml-vocab-gpt-2.gguf");
}

/* ---- behaviour ---------------------------------------------------------------------------- */

static void expect_encode(const tok_vocab *v, const char *s, size_t len, bool add_special,
                          bool parse_special, const int32_t *want, size_t n_want) {
    size_t n;
    int32_t *got = encode(v, s, len, add_special, parse_special, &n);
    int failures = 0;
    expect_ids("expect_encode", got, n, want, n_want, &failures);
    free(got);
    assert_int_equal(failures, 0);
}

/* Invalid UTF-8: each bad byte is U+FFFD for byte-level BPE and a byte token for
 * SentencePiece. Expected ids from llama-tokenize --no-parse-special --no-bos. */
static const char k_invalid[] = "a\x80"
                                "b \xff\xfe \xc3( \xe2\x82 \xc0\x80 \xed\xa0\x80 end\xf0\x9f\x98";

static void test_invalid_utf8(void **state) {
    (void)state;
    static const int32_t smollm2[] = {81,    24211, 82,  216,   24211, 24211, 216,
                                      24211, 24,    216, 24211, 24211, 216,   190,
                                      48138, 250,   218, 1112,  24211, 24211, 24211};
    static const int32_t spm[] = {263, 131,   29890, 29871, 258, 257,  229, 153, 132,
                                  198, 43,    29871, 229,   133, 229,  153, 132, 195,
                                  131, 29871, 240,   163,   131, 1095, 243, 162, 155};
    static const int32_t bpe[] = {64,    5809, 65,  220,   10178, 30433, 7,    220,
                                  10178, 220,  188, 10997, 64319, 842,   58432};
    vocab_case c[3] = {{.name = "smollm2", .file = NULL},
                       {.name = "spm", .file = "ggml-vocab-llama-spm.gguf"},
                       {.name = "bpe", .file = "ggml-vocab-llama-bpe.gguf"}};
    const int32_t *want[3] = {smollm2, spm, bpe};
    size_t n_want[3] = {sizeof smollm2 / 4, sizeof spm / 4, sizeof bpe / 4};
    for (int k = 0; k < 3; k++) {
        open_case(&c[k]);
        expect_encode(c[k].v, k_invalid, sizeof k_invalid - 1, false, false, want[k], n_want[k]);
        close_case(&c[k]);
    }
}

/* Code points past U+10FFFF (lead bytes F4..F7), on which llama.cpp aborts, are treated as
 * invalid bytes: every byte becomes U+FFFD. */
static void test_beyond_unicode(void **state) {
    (void)state;
    vocab_case c = {.name = "smollm2", .file = NULL};
    open_case(&c);
    size_t n_a, n_b;
    int32_t *a = encode(c.v, "\xf7\xbf\xbf\xbf", 4, false, false, &n_a);
    int32_t *b = encode(c.v, "\x80\x80\x80\x80", 4, false, false, &n_b);
    assert_int_equal(n_a, n_b);
    assert_memory_equal(a, b, n_a * sizeof *a);
    free(a);
    free(b);
    close_case(&c);
}

static void test_empty_input(void **state) {
    (void)state;
    vocab_case c = {.name = "spm", .file = "ggml-vocab-llama-spm.gguf"};
    open_case(&c);
    core_err err = {{0}};
    size_t n = 99;
    int32_t ids[4];
    assert_int_equal(tok_encode(c.v, "", 0, false, true, ids, 4, &n, &err), VKLLM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tok_encode(c.v, NULL, 0, true, true, ids, 4, &n, &err), VKLLM_OK);
    assert_int_equal(n, 1); /* SentencePiece: [BOS] alone */
    assert_int_equal(ids[0], 1);
    assert_int_equal(tok_encode(c.v, NULL, 3, true, true, ids, 4, &n, &err), VKLLM_ERR_INVALID_ARG);
    close_case(&c);
}

static void test_buffer_too_small(void **state) {
    (void)state;
    vocab_case c = {.name = "smollm2", .file = NULL};
    open_case(&c);
    const char *s = "The quick brown fox jumps over the lazy dog.";
    size_t n_all;
    int32_t *all = encode(c.v, s, strlen(s), false, false, &n_all);
    assert_true(n_all > 4);
    int32_t few[4] = {-7, -7, -7, -7};
    size_t n = 0;
    core_err err = {{0}};
    assert_int_equal(tok_encode(c.v, s, strlen(s), false, false, few, 3, &n, &err),
                     VKLLM_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, n_all);
    assert_memory_equal(few, all, 3 * sizeof *few); /* what fits is written */
    assert_int_equal(few[3], -7);                   /* and nothing past cap */
    assert_non_null(strstr(err.msg, "do not fit"));
    /* tok_piece: bytes needed, nothing past cap. */
    char piece[8] = "xxxxxxx";
    int32_t im_start = 1;
    assert_int_equal(tok_piece(c.v, im_start, true, piece, 3), 12);
    assert_memory_equal(piece, "<|ixxxx", 7);
    assert_int_equal(tok_piece(c.v, im_start, true, NULL, 0), 12);
    assert_int_equal(tok_piece(c.v, -1, true, piece, 8), 0);
    assert_int_equal(tok_piece(c.v, (int32_t)tok_n_vocab(c.v), true, piece, 8), 0);
    free(all);
    close_case(&c);
}

static void test_special_tokens(void **state) {
    (void)state;
    vocab_case c = {.name = "smollm2", .file = NULL};
    open_case(&c);
    const tok_vocab *v = c.v;
    assert_int_equal(tok_bos(v), 1);
    assert_int_equal(tok_eos(v), 2);
    assert_false(tok_add_bos(v));
    assert_true(tok_is_eog(v, 2));  /* <|im_end|> */
    assert_true(tok_is_eog(v, 0));  /* <|endoftext|> */
    assert_true(tok_is_eog(v, 4));  /* <reponame>: llama.cpp's fill-in-the-middle repo token */
    assert_false(tok_is_eog(v, 1)); /* <|im_start|> */
    assert_false(tok_is_eog(v, -1));
    assert_false(tok_is_eog(v, (int32_t)tok_n_vocab(v)));
    assert_true(tok_is_control(v, 1));
    assert_false(tok_is_control(v, 100));
    assert_string_equal(tok_pre_name(v), "smollm");
    assert_false(tok_pre_unknown(v));
    gguf_str t = tok_text(v, 2);
    assert_int_equal(t.len, 10);
    assert_memory_equal(t.ptr, "<|im_end|>", 10);

    /* parse_special turns the text into the token; without it, it is ordinary text. */
    const char *s = "<|im_start|>user\nhi<|im_end|>";
    size_t n_on, n_off;
    int32_t *on = encode(v, s, strlen(s), false, true, &n_on);
    int32_t *off = encode(v, s, strlen(s), false, false, &n_off);
    assert_int_equal(on[0], 1);
    assert_int_equal(on[n_on - 1], 2);
    for (size_t i = 0; i < n_off; i++)
        assert_true(off[i] > 16);
    /* Control tokens render only when asked. */
    char buf[64];
    assert_int_equal(tok_piece(v, 1, false, buf, sizeof buf), 0);
    assert_int_equal(tok_piece(v, 1, true, buf, sizeof buf), 12);
    size_t n_txt;
    char *txt = decode(v, on, n_on, true, &n_txt);
    assert_string_equal(txt, s);
    free(txt);
    free(on);
    free(off);
    close_case(&c);

    vocab_case l = {.name = "llama-bpe", .file = "ggml-vocab-llama-bpe.gguf"};
    open_case(&l);
    assert_true(tok_add_bos(l.v));
    assert_true(tok_is_eog(l.v, 128009)); /* <|eot_id|> */
    assert_true(tok_is_eog(l.v, 128001)); /* <|end_of_text|> */
    assert_false(tok_is_eog(l.v, 128006));
    assert_string_equal(tok_pre_name(l.v), "llama3");
    static const int32_t hi[] = {128000, 128006, 882, 128007, 271, 6151, 128009};
    const char *h = "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>";
    expect_encode(l.v, h, strlen(h), true, true, hi, 7);
    close_case(&l);
}

/* A file whose tokenizer.ggml.pre we do not know: default regexes, and the caller is told. */
static void test_unknown_pre(void **state) {
    (void)state;
    vocab_case c = {.name = "x", .file = "ggml-vocab-gpt-2.gguf", .pre = "no-such-pre"};
    open_case(&c);
    assert_true(tok_pre_unknown(c.v));
    assert_string_equal(tok_pre_name(c.v), "default");
    vocab_case d = {.name = "gpt-2-default", .file = "ggml-vocab-gpt-2.gguf", .pre = "default"};
    open_case(&d);
    assert_false(tok_pre_unknown(d.v));
    const char *s = "x1234!? 'll 99999";
    size_t n1, n2;
    int32_t *a = encode(c.v, s, strlen(s), false, false, &n1);
    int32_t *b = encode(d.v, s, strlen(s), false, false, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1 * sizeof *a);
    free(a);
    free(b);
    close_case(&c);
    close_case(&d);
}

static void test_unicode_tables(void **state) {
    (void)state;
    assert_true(uni_flags('a') & UNI_LETTER);
    assert_true(uni_flags('7') & UNI_NUMBER);
    assert_true(uni_flags(' ') & UNI_WHITESPACE);
    assert_true(uni_flags('!') & UNI_PUNCT);
    assert_true(uni_flags('$') & UNI_SYMBOL);
    assert_true(uni_flags(0x4E2D) & UNI_LETTER);      /* CJK */
    assert_true(uni_flags(0x0663) & UNI_NUMBER);      /* Arabic-Indic 3 */
    assert_true(uni_flags(0x3000) & UNI_WHITESPACE);  /* ideographic space */
    assert_true(uni_flags(0x0301) & UNI_MARK);        /* combining acute */
    assert_true(uni_flags(0x2EBF0) & UNI_LETTER);     /* CJK Ext. I, new in Unicode 15.1 */
    assert_int_equal(uni_flags(0x10FFFF), UNI_UNDEF); /* unassigned */
    assert_int_equal(uni_flags(0x110000), UNI_UNDEF);
    for (int b = 0; b < 256; b++)
        assert_int_equal(uni_cpt_to_byte(uni_byte_to_cpt((uint8_t)b)), b);
    assert_int_equal(uni_byte_to_cpt(' '), 0x120); /* "Ġ" */
    assert_int_equal(uni_cpt_to_byte(0x41), 'A');
    assert_int_equal(uni_cpt_to_byte(0x20), -1);
    size_t adv;
    assert_int_equal(uni_decode((const uint8_t *)"\xc3\xa9", 2, &adv), 0xE9);
    assert_int_equal(adv, 2);
    assert_int_equal(uni_decode((const uint8_t *)"\xc3", 1, &adv), UNI_REPLACEMENT);
    assert_int_equal(adv, 1);
    assert_int_equal(uni_decode((const uint8_t *)"\xc0\x80", 2, &adv),
                     0); /* overlong, as llama.cpp */
}

/* A 4000-token text must tokenize in well under 50 ms (checked loosely here, since the
 * sanitizer builds are slower; the time is printed). */
static void test_speed(void **state) {
    (void)state;
    vocab_case cases[3] = {{.name = "smollm2", .file = NULL},
                           {.name = "llama-bpe", .file = "ggml-vocab-llama-bpe.gguf"},
                           {.name = "llama-spm", .file = "ggml-vocab-llama-spm.gguf"}};
    golden_strings g;
    load_strings(&g);
    size_t cap = 1 << 20, len = 0;
    char *text = malloc(cap);
    for (size_t i = 0; len + 512 < cap && len < 20000; i = (i + 1) % g.n) {
        memcpy(text + len, g.s[i], g.len[i]);
        len += g.len[i];
        text[len++] = ' ';
    }
    for (int k = 0; k < 3; k++) {
        open_case(&cases[k]);
        size_t n = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int32_t *ids = encode(cases[k].v, text, len, false, true, &n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        /* encode() tokenizes twice (size, then ids) */
        printf("%s: %zu bytes -> %zu tokens in %.2f ms (two passes)\n", cases[k].name, len, n, ms);
        assert_true(n >= 4000);
        assert_true(ms < 1000.0);
        free(ids);
        close_case(&cases[k]);
    }
    free(text);
    free(g.file.p);
}

/* Random bytes: no crash, same answer twice, every piece concatenation well formed. */
static void test_random_bytes(void **state) {
    (void)state;
    vocab_case c[2] = {{.name = "smollm2", .file = NULL},
                       {.name = "spm", .file = "ggml-vocab-llama-spm.gguf"}};
    uint64_t seed = 12345;
    for (int k = 0; k < 2; k++) {
        open_case(&c[k]);
        for (int it = 0; it < 300; it++) {
            char s[64];
            size_t len = (size_t)(it % 64);
            for (size_t i = 0; i < len; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                /* Bias toward bytes that matter: ASCII, UTF-8 leads and continuations. */
                uint8_t b = (uint8_t)(seed >> 56);
                s[i] = (char)((seed >> 40) & 1 ? b : "<|>im_sta \n0\xc3\xa9\xe2\x96\x81"[b % 18]);
            }
            size_t n1, n2, nt;
            int32_t *a = encode(c[k].v, s, len, true, (it & 1) != 0, &n1);
            int32_t *b = encode(c[k].v, s, len, true, (it & 1) != 0, &n2);
            assert_int_equal(n1, n2);
            assert_memory_equal(a, b, n1 * sizeof *a);
            for (size_t i = 0; i < n1; i++)
                assert_true(a[i] >= 0 && (uint32_t)a[i] < tok_n_vocab(c[k].v));
            free(decode(c[k].v, a, n1, true, &nt));
            free(a);
            free(b);
        }
        close_case(&c[k]);
    }
}

/* Allocation failure is a normal path: fail the n-th allocation for every n until loading
 * (and then tokenizing) succeeds; each failure must be a clean VKLLM_ERR_OUT_OF_MEMORY
 * (ASan checks for leaks). */
typedef struct fail_alloc {
    long count, fail_at, live;
} fail_alloc;

static void *fa_alloc(void *user, size_t size, size_t align) {
    fail_alloc *fa = user;
    if (fa->count++ == fa->fail_at) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) != 0) return NULL;
    fa->live++;
    return p;
}

static void fa_free(void *user, void *p) {
    fail_alloc *fa = user;
    if (p) fa->live--;
    free(p);
}

static void test_out_of_memory(void **state) {
    (void)state;
    gguf_file *f;
    core_err err = {{0}};
    gguf_open_desc d = {.vocab_only = true};
    const char *path = vocab_path("ggml-vocab-llama-spm.gguf");
    assert_int_equal(gguf_open(path, &d, &f, &err), VKLLM_OK);
    fail_alloc fa = {0, 0, 0};
    vkllm_allocator a = {fa_alloc, fa_free, &fa};
    tok_vocab *v = NULL;
    long n_fail = 0;
    for (fa.fail_at = 0;; fa.fail_at++) {
        fa.count = 0;
        vkllm_status st = tok_load(f, &a, &v, &err);
        if (st == VKLLM_OK) break;
        assert_int_equal(st, VKLLM_ERR_OUT_OF_MEMORY);
        assert_null(v);
        assert_int_equal(fa.live, 0);
        n_fail++;
    }
    assert_true(n_fail > 5);
    const char *s = "<s>Hello world, 123 <unk> \xff tokens";
    int32_t ids[64];
    size_t n = 0, n_ok = 0;
    long live = fa.live;
    for (long k = 0;; k++) {
        fa.fail_at = fa.count + k; /* the k-th allocation of this call fails */
        vkllm_status st = tok_encode(v, s, strlen(s), true, true, ids, 64, &n, &err);
        if (st == VKLLM_OK) {
            n_ok = n;
            break;
        }
        assert_int_equal(st, VKLLM_ERR_OUT_OF_MEMORY);
        assert_int_equal(fa.live, live);
        assert_true(k < 64);
    }
    assert_true(n_ok > 5);
    tok_free(v);
    assert_int_equal(fa.live, 0);
    gguf_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_smollm2),
        cmocka_unit_test(test_golden_llama_spm),
        cmocka_unit_test(test_golden_llama_bpe),
        cmocka_unit_test(test_golden_gpt2),
        cmocka_unit_test(test_golden_gpt2_default),
        cmocka_unit_test(test_golden_gpt2_qwen2),
        cmocka_unit_test(test_inp_out_llama_spm),
        cmocka_unit_test(test_inp_out_llama_bpe),
        cmocka_unit_test(test_inp_out_gpt2),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_beyond_unicode),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_buffer_too_small),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_unknown_pre),
        cmocka_unit_test(test_unicode_tables),
        cmocka_unit_test(test_speed),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
