/* jsc_compile: a JSON Schema's text to the node graph of json_node.h. A small JSON reader
 * (RFC 8259, into an arena freed at the end) and a compiler over its tree. The subset and its
 * limits are listed in json_schema.h; anything outside it is an error that names the keyword
 * and its place as a JSON pointer, never ignored. */
#include "sched/json_node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSC_MAX_PARSE_DEPTH 64
#define JSC_MAX_PROPS 1024   /* per object: key matching scans the candidates */
#define JSC_MAX_ENUM 65536   /* per enum: matching is a binary search */
#define JSC_MAX_NODES 100000 /* the whole schema */

enum { JV_NULL, JV_FALSE, JV_TRUE, JV_NUM, JV_STR, JV_ARR, JV_OBJ };

typedef struct jv {
    uint8_t t;
    uint32_t n;    /* children */
    const char *s; /* JV_STR: the decoded bytes; JV_NUM: the text */
    uint32_t slen;
    const char *key; /* as an object member: its decoded key */
    uint32_t klen;
    struct jv *kid, *next;
} jv;

typedef struct blk {
    struct blk *next;
    size_t used, cap;
    char data[];
} blk;

typedef struct jp {
    const vkllm_allocator *a;
    const char *p, *end;
    core_err *err;
    blk *arena;
    bool failed;
    jsc_schema *sc;
    uint32_t cap_nodes, cap_props, cap_kids, cap_lits, cap_pool;
    uint32_t any; /* the any-value node, made when first needed */
    char path[256];
    size_t path_len;
} jp;

static void *arena(jp *j, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!j->arena || j->arena->cap - j->arena->used < n) {
        const size_t cap = n > 65536 ? n : 65536;
        blk *b = core_alloc(j->a, sizeof *b + cap, 0);
        if (!b) return NULL;
        b->next = j->arena;
        b->used = 0;
        b->cap = cap;
        j->arena = b;
    }
    void *p = j->arena->data + j->arena->used;
    j->arena->used += n;
    return p;
}

static bool fail(jp *j, vkllm_status st, const char *what) {
    if (!j->failed) {
        core_errf(j->err, st, "json schema: %s at %s", what, j->path_len ? j->path : "/");
        j->failed = true;
    }
    return false;
}

/* ---- reading JSON ---- */

static void skip_ws(jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int hexv(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_u4(jp *j, uint32_t *u) {
    if (j->end - j->p < 4) return false;
    *u = 0;
    for (int i = 0; i < 4; i++) {
        const int h = hexv(j->p[i]);
        if (h < 0) return false;
        *u = *u << 4 | (uint32_t)h;
    }
    j->p += 4;
    return true;
}

/* A string at j->p (the opening quote), decoded to UTF-8 in the arena. */
static bool read_str(jp *j, const char **out, uint32_t *len) {
    const char *q = ++j->p;
    while (q < j->end && *q != '"')
        q += *q == '\\' ? 2 : 1;
    if (q >= j->end) return fail(j, VKLLM_ERR_INVALID_ARG, "unterminated string");
    char *d = arena(j, (size_t)(q - j->p) + 1);
    if (!d) return fail(j, VKLLM_ERR_OUT_OF_MEMORY, "out of memory");
    uint32_t n = 0;
    while (*j->p != '"') {
        const unsigned char c = (unsigned char)*j->p;
        if (c < 0x20) return fail(j, VKLLM_ERR_INVALID_ARG, "control character in a string");
        if (c != '\\') {
            d[n++] = (char)c;
            j->p++;
            continue;
        }
        const char e = j->p[1];
        j->p += 2;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            d[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        uint32_t u;
        if (e != 'u' || !read_u4(j, &u))
            return fail(j, VKLLM_ERR_INVALID_ARG, "bad escape in a string");
        if (u >= 0xD800 && u < 0xDC00) { /* a surrogate pair */
            uint32_t lo;
            if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || (j->p += 2, false) ||
                !read_u4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return fail(j, VKLLM_ERR_INVALID_ARG, "unpaired surrogate in a string");
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        } else if (u >= 0xDC00 && u < 0xE000) {
            return fail(j, VKLLM_ERR_INVALID_ARG, "unpaired surrogate in a string");
        }
        if (u < 0x80) {
            d[n++] = (char)u;
        } else if (u < 0x800) {
            d[n++] = (char)(0xC0 | u >> 6);
            d[n++] = (char)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
            d[n++] = (char)(0xE0 | u >> 12);
            d[n++] = (char)(0x80 | (u >> 6 & 0x3F));
            d[n++] = (char)(0x80 | (u & 0x3F));
        } else {
            d[n++] = (char)(0xF0 | u >> 18);
            d[n++] = (char)(0x80 | (u >> 12 & 0x3F));
            d[n++] = (char)(0x80 | (u >> 6 & 0x3F));
            d[n++] = (char)(0x80 | (u & 0x3F));
        }
    }
    j->p++;
    *out = d;
    *len = n;
    return true;
}

static bool read_num(jp *j, jv *v) {
    const char *s = j->p;
#define DIGITS(min)                                                                                \
    do {                                                                                           \
        const char *d0 = j->p;                                                                     \
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')                                      \
            j->p++;                                                                                \
        if (j->p - d0 < (min)) return fail(j, VKLLM_ERR_INVALID_ARG, "bad number");                \
    } while (0)
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else
        DIGITS(1);
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        DIGITS(1);
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        DIGITS(1);
    }
#undef DIGITS
    v->t = JV_NUM;
    v->s = s;
    v->slen = (uint32_t)(j->p - s);
    return true;
}

static jv *read_value(jp *j, int depth) {
    skip_ws(j);
    if (j->p >= j->end) return fail(j, VKLLM_ERR_INVALID_ARG, "unexpected end of JSON"), NULL;
    if (depth > JSC_MAX_PARSE_DEPTH)
        return fail(j, VKLLM_ERR_INVALID_ARG, "JSON nested too deep"), NULL;
    jv *v = arena(j, sizeof *v);
    if (!v) return fail(j, VKLLM_ERR_OUT_OF_MEMORY, "out of memory"), NULL;
    memset(v, 0, sizeof *v);
    const char c = *j->p;
    static const char *const words[] = {"null", "false", "true"};
    for (int w = 0; w < 3; w++) {
        const size_t n = strlen(words[w]);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[w], n) == 0) {
            v->t = (uint8_t)(JV_NULL + w);
            j->p += n;
            return v;
        }
    }
    if (c == '"') return read_str(j, &v->s, &v->slen) ? (v->t = JV_STR, v) : NULL;
    if (c == '-' || (c >= '0' && c <= '9')) return read_num(j, v) ? v : NULL;
    if (c != '[' && c != '{') return fail(j, VKLLM_ERR_INVALID_ARG, "bad JSON"), NULL;
    const bool obj = c == '{';
    v->t = obj ? JV_OBJ : JV_ARR;
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
        j->p++;
        return v;
    }
    jv **tail = &v->kid;
    for (;;) {
        const char *key = NULL;
        uint32_t klen = 0;
        if (obj) {
            skip_ws(j);
            if (j->p >= j->end || *j->p != '"')
                return fail(j, VKLLM_ERR_INVALID_ARG, "expected a key in an object"), NULL;
            if (!read_str(j, &key, &klen)) return NULL;
            for (const jv *k = v->kid; k; k = k->next)
                if (k->klen == klen && memcmp(k->key, key, klen) == 0)
                    return fail(j, VKLLM_ERR_INVALID_ARG, "duplicate key in an object"), NULL;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return fail(j, VKLLM_ERR_INVALID_ARG, "expected ':' in an object"), NULL;
            j->p++;
        }
        jv *k = read_value(j, depth + 1);
        if (!k) return NULL;
        k->key = key;
        k->klen = klen;
        *tail = k;
        tail = &k->next;
        v->n++;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
            j->p++;
            return v;
        }
        return fail(j, VKLLM_ERR_INVALID_ARG, "expected ',' or the end of a list"), NULL;
    }
}

/* ---- the compiled schema ---- */

static bool grow(jp *j, void **arr, uint32_t *cap, uint32_t need, size_t elem) {
    if (need <= *cap) return true;
    uint32_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *p = core_calloc(j->a, nc, elem);
    if (!p) return fail(j, VKLLM_ERR_OUT_OF_MEMORY, "out of memory");
    if (*cap) memcpy(p, *arr, (size_t)*cap * elem);
    core_free(j->a, *arr);
    *arr = p;
    *cap = nc;
    return true;
}

static uint32_t new_node(jp *j, uint8_t kind) {
    jsc_schema *sc = j->sc;
    if (sc->n_nodes >= JSC_MAX_NODES)
        return fail(j, VKLLM_ERR_INVALID_ARG, "schema too large (over 100000 nodes)"), UINT32_MAX;
    if (!grow(j, (void **)&sc->nodes, &j->cap_nodes, sc->n_nodes + 1, sizeof *sc->nodes))
        return UINT32_MAX;
    jsc_node *n = &sc->nodes[sc->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->max = UINT32_MAX;
    static const char *const firsts[] = {[JN_OBJECT] = "{",
                                         [JN_MAP] = "{",
                                         [JN_ARRAY] = "[",
                                         [JN_STRING] = "\"",
                                         [JN_NUMBER] = "-0123456789",
                                         [JN_INTEGER] = "-0123456789"};
    if (kind != JN_UNION && kind != JN_ENUM)
        for (const char *f = firsts[kind]; *f; f++)
            n->first[(uint8_t)*f >> 3] |= (uint8_t)(1u << (*f & 7));
    return sc->n_nodes++;
}

static bool pool_put(jp *j, const char *s, size_t n) {
    jsc_schema *sc = j->sc;
    if (n > UINT32_MAX / 2 ||
        !grow(j, (void **)&sc->pool, &j->cap_pool, sc->n_pool + (uint32_t)n, 1))
        return false;
    memcpy(sc->pool + sc->n_pool, s, n);
    sc->n_pool += (uint32_t)n;
    return true;
}

/* A string's JSON text without its quotes: the only escapes are the ones JSON requires. */
static bool put_escaped(jp *j, const char *s, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        char e[8];
        const char *m = strchr("\"\\\b\f\n\r\t", c);
        if (c && m) {
            e[0] = '\\';
            e[1] = "\"\\bfnrt"[m - "\"\\\b\f\n\r\t"];
            if (!pool_put(j, e, 2)) return false;
        } else if (c < 0x20) {
            static const char hx[] = "0123456789abcdef";
            memcpy(e, "\\u00", 4);
            e[4] = hx[c >> 4];
            e[5] = hx[c & 15];
            if (!pool_put(j, e, 6)) return false;
        } else if (!pool_put(j, (const char *)&c, 1)) {
            return false;
        }
    }
    return true;
}

/* The compact JSON text of v, appended to the pool. */
static bool put_json(jp *j, const jv *v) {
    switch (v->t) {
    case JV_NULL:
        return pool_put(j, "null", 4);
    case JV_FALSE:
        return pool_put(j, "false", 5);
    case JV_TRUE:
        return pool_put(j, "true", 4);
    case JV_NUM:
        return pool_put(j, v->s, v->slen);
    case JV_STR:
        return pool_put(j, "\"", 1) && put_escaped(j, v->s, v->slen) && pool_put(j, "\"", 1);
    default:
        break;
    }
    const bool obj = v->t == JV_OBJ;
    if (!pool_put(j, obj ? "{" : "[", 1)) return false;
    for (const jv *k = v->kid; k; k = k->next) {
        if (k != v->kid && !pool_put(j, ",", 1)) return false;
        if (obj &&
            !(pool_put(j, "\"", 1) && put_escaped(j, k->key, k->klen) && pool_put(j, "\":", 2)))
            return false;
        if (!put_json(j, k)) return false;
    }
    return pool_put(j, obj ? "}" : "]", 1);
}

/* ---- compiling ---- */

static size_t path_push(jp *j, const char *seg, size_t n) {
    const size_t saved = j->path_len;
    if (j->path_len + n + 2 < sizeof j->path) {
        j->path[j->path_len++] = '/';
        memcpy(j->path + j->path_len, seg, n);
        j->path_len += n;
        j->path[j->path_len] = '\0';
    }
    return saved;
}

static void path_pop(jp *j, size_t saved) {
    j->path_len = saved;
    j->path[saved] = '\0';
}

typedef struct lit_sort {
    const char *p;
    jsc_lit l;
} lit_sort;

static int lit_cmp(const void *x, const void *y) {
    const lit_sort *a = x, *b = y;
    const uint32_t n = a->l.len < b->l.len ? a->l.len : b->l.len;
    const int c = memcmp(a->p, b->p, n);
    if (c) return c;
    return a->l.len < b->l.len ? -1 : a->l.len > b->l.len;
}

static bool add_lit(jp *j, uint32_t off) {
    jsc_schema *sc = j->sc;
    if (!grow(j, (void **)&sc->lits, &j->cap_lits, sc->n_lits + 1, sizeof *sc->lits)) return false;
    sc->lits[sc->n_lits++] = (jsc_lit){off, sc->n_pool - off};
    return true;
}

/* An enum node over lits[from .. n_lits): sorted, without duplicates. */
static uint32_t finish_enum(jp *j, uint32_t from) {
    jsc_schema *sc = j->sc;
    const uint32_t n = sc->n_lits - from;
    if (n == 0) return fail(j, VKLLM_ERR_INVALID_ARG, "enum: no value fits the type"), UINT32_MAX;
    if (n > JSC_MAX_ENUM)
        return fail(j, VKLLM_ERR_INVALID_ARG, "enum: over 65536 values"), UINT32_MAX;
    lit_sort *t = arena(j, (size_t)n * sizeof *t);
    if (!t) return fail(j, VKLLM_ERR_OUT_OF_MEMORY, "out of memory"), UINT32_MAX;
    for (uint32_t i = 0; i < n; i++)
        t[i] = (lit_sort){sc->pool + sc->lits[from + i].off, sc->lits[from + i]};
    qsort(t, n, sizeof *t, lit_cmp);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (m == 0 || lit_cmp(&t[m - 1], &t[i]) != 0) t[m++] = t[i];
    for (uint32_t i = 0; i < m; i++)
        sc->lits[from + i] = t[i].l;
    sc->n_lits = from + m;
    const uint32_t e = new_node(j, JN_ENUM);
    if (e == UINT32_MAX) return e;
    jsc_node *nd = &sc->nodes[e];
    nd->a = from;
    nd->b = m;
    for (uint32_t i = 0; i < m; i++) {
        const uint8_t c = (uint8_t)sc->pool[sc->lits[from + i].off];
        nd->first[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
    return e;
}

/* A union of n nodes, whose first bytes must not overlap (the first byte picks the branch). */
static uint32_t make_union(jp *j, const uint32_t *kids, uint32_t n) {
    if (n == 1) return kids[0];
    jsc_schema *sc = j->sc;
    uint8_t first[32] = {0};
    for (uint32_t k = 0; k < n; k++)
        for (int b = 0; b < 32; b++) {
            if (first[b] & sc->nodes[kids[k]].first[b])
                return fail(j, VKLLM_ERR_INVALID_ARG,
                            "anyOf/type: two branches can start with the same byte (branches "
                            "must differ in type)"),
                       UINT32_MAX;
            first[b] |= sc->nodes[kids[k]].first[b];
        }
    const uint32_t u = new_node(j, JN_UNION);
    if (u == UINT32_MAX ||
        !grow(j, (void **)&sc->kids, &j->cap_kids, sc->n_kids + n, sizeof *sc->kids))
        return UINT32_MAX;
    sc->nodes[u].a = sc->n_kids;
    sc->nodes[u].b = n;
    memcpy(sc->nodes[u].first, first, sizeof first);
    memcpy(sc->kids + sc->n_kids, kids, (size_t)n * sizeof *kids);
    sc->n_kids += n;
    return u;
}

static uint32_t any_node(jp *j) {
    if (j->any != UINT32_MAX) return j->any;
    const uint32_t from = j->sc->n_lits;
    static const char *const words[] = {"false", "null", "true"};
    for (int w = 0; w < 3; w++) {
        const uint32_t off = j->sc->n_pool;
        if (!pool_put(j, words[w], strlen(words[w])) || !add_lit(j, off)) return UINT32_MAX;
    }
    uint32_t k[5] = {new_node(j, JN_MAP), new_node(j, JN_ARRAY), new_node(j, JN_STRING),
                     new_node(j, JN_NUMBER), finish_enum(j, from)};
    if (j->failed) return UINT32_MAX;
    const uint32_t u = make_union(j, k, 5);
    if (u == UINT32_MAX) return u;
    j->sc->nodes[k[0]].child = u; /* any values in any containers */
    j->sc->nodes[k[1]].child = u;
    return j->any = u;
}

static bool key_is(const jv *k, const char *s) {
    return k->klen == strlen(s) && memcmp(k->key, s, k->klen) == 0;
}

/* A count keyword (minItems, maxLength, ...): a non-negative integer. */
static bool read_count(jp *j, const jv *v, uint32_t *out) {
    if (!v) return true;
    uint64_t x = 0;
    bool ok = v->t == JV_NUM && v->slen > 0 && v->slen < 10;
    for (uint32_t i = 0; ok && i < v->slen; i++) {
        ok = v->s[i] >= '0' && v->s[i] <= '9';
        x = x * 10 + (uint64_t)(v->s[i] - '0');
    }
    if (!ok) {
        const size_t saved = path_push(j, v->key, v->klen);
        fail(j, VKLLM_ERR_INVALID_ARG, "expected an integer in [0, 1e9)");
        path_pop(j, saved);
        return false;
    }
    *out = (uint32_t)x;
    return true;
}

enum { T_NULL = 1, T_BOOL = 2, T_OBJ = 4, T_ARR = 8, T_NUM = 16, T_INT = 32, T_STR = 64 };

static unsigned type_bit(const jv *t) {
    static const char *const names[] = {"null",   "boolean", "object", "array",
                                        "number", "integer", "string"};
    if (t->t != JV_STR) return 0;
    for (unsigned i = 0; i < 7; i++)
        if (t->slen == strlen(names[i]) && memcmp(t->s, names[i], t->slen) == 0) return 1u << i;
    return 0;
}

static unsigned value_types(const jv *v) {
    switch (v->t) {
    case JV_NULL:
        return T_NULL;
    case JV_FALSE:
    case JV_TRUE:
        return T_BOOL;
    case JV_STR:
        return T_STR;
    case JV_ARR:
        return T_ARR;
    case JV_OBJ:
        return T_OBJ;
    default:
        break;
    }
    for (uint32_t i = 0; i < v->slen; i++)
        if (v->s[i] == '.' || v->s[i] == 'e' || v->s[i] == 'E') return T_NUM;
    return T_NUM | T_INT;
}

static uint32_t compile(jp *j, const jv *v, int depth);

static uint32_t compile_object(jp *j, const jv *props, const jv *req, const jv *addl, int depth) {
    jsc_schema *sc = j->sc;
    if (req && req->t != JV_ARR)
        return fail(j, VKLLM_ERR_INVALID_ARG, "required: not a list"), UINT32_MAX;
    if (props && props->t != JV_OBJ)
        return fail(j, VKLLM_ERR_INVALID_ARG, "properties: not an object"), UINT32_MAX;
    const uint32_t np = props ? props->n : 0;
    for (const jv *r = req ? req->kid : NULL; r; r = r->next) {
        const jv *p = props ? props->kid : NULL;
        while (p && r->t == JV_STR && !(p->klen == r->slen && memcmp(p->key, r->s, p->klen) == 0))
            p = p->next;
        if (!p)
            return fail(j, VKLLM_ERR_INVALID_ARG,
                        r->t == JV_STR ? "required: a name not in properties"
                                       : "required: not a list of strings"),
                   UINT32_MAX;
    }
    if (np == 0) {
        if (addl && addl->t == JV_FALSE) return new_node(j, JN_OBJECT); /* only {} */
        uint32_t child = any_node(j);
        if (addl && addl->t == JV_OBJ) {
            const size_t saved = path_push(j, "additionalProperties", 20);
            child = compile(j, addl, depth + 1);
            path_pop(j, saved);
        }
        const uint32_t m = child == UINT32_MAX ? UINT32_MAX : new_node(j, JN_MAP);
        if (m != UINT32_MAX) sc->nodes[m].child = child;
        return m;
    }
    if (np > JSC_MAX_PROPS)
        return fail(j, VKLLM_ERR_INVALID_ARG, "properties: over 1024 in one object"), UINT32_MAX;
    jsc_prop *tmp = arena(j, (size_t)np * sizeof *tmp);
    if (!tmp) return fail(j, VKLLM_ERR_OUT_OF_MEMORY, "out of memory"), UINT32_MAX;
    uint32_t i = 0;
    for (const jv *p = props->kid; p; p = p->next, i++) {
        size_t saved = path_push(j, "properties", 10);
        path_push(j, p->key, p->klen);
        tmp[i].node = compile(j, p, depth + 1);
        path_pop(j, saved);
        if (tmp[i].node == UINT32_MAX) return UINT32_MAX;
        tmp[i].key = sc->n_pool;
        if (!put_escaped(j, p->key, p->klen)) return UINT32_MAX;
        tmp[i].key_len = sc->n_pool - tmp[i].key;
        tmp[i].required = false;
        for (const jv *r = req ? req->kid : NULL; r; r = r->next)
            if (r->slen == p->klen && memcmp(r->s, p->key, p->klen) == 0) tmp[i].required = true;
    }
    const uint32_t o = new_node(j, JN_OBJECT);
    if (o == UINT32_MAX ||
        !grow(j, (void **)&sc->props, &j->cap_props, sc->n_props + np, sizeof *sc->props))
        return UINT32_MAX;
    sc->nodes[o].a = sc->n_props;
    sc->nodes[o].b = np;
    memcpy(sc->props + sc->n_props, tmp, (size_t)np * sizeof *tmp);
    sc->n_props += np;
    return o;
}

static uint32_t compile(jp *j, const jv *v, int depth) {
    if (depth >= JSC_MAX_DEPTH - 1)
        return fail(j, VKLLM_ERR_INVALID_ARG, "schema nested deeper than 30"), UINT32_MAX;
    if (v->t == JV_TRUE) return any_node(j);
    if (v->t == JV_FALSE)
        return fail(j, VKLLM_ERR_INVALID_ARG, "schema false accepts nothing"), UINT32_MAX;
    if (v->t != JV_OBJ)
        return fail(j, VKLLM_ERR_INVALID_ARG, "a schema must be an object or a boolean"),
               UINT32_MAX;
    static const char *const notes[] = {"title",       "description", "default",  "examples",
                                        "$schema",     "$id",         "$comment", "$defs",
                                        "definitions", "deprecated",  "readOnly", "writeOnly"};
    const jv *type = NULL, *props = NULL, *req = NULL, *addl = NULL, *items = NULL, *en = NULL,
             *cst = NULL, *any_of = NULL, *min_i = NULL, *max_i = NULL, *min_l = NULL,
             *max_l = NULL;
    const struct {
        const char *name;
        const jv **slot;
    } known[] = {{"type", &type},       {"properties", &props},
                 {"required", &req},    {"additionalProperties", &addl},
                 {"items", &items},     {"enum", &en},
                 {"const", &cst},       {"anyOf", &any_of},
                 {"minItems", &min_i},  {"maxItems", &max_i},
                 {"minLength", &min_l}, {"maxLength", &max_l}};
    uint32_t n_known = 0;
    for (const jv *k = v->kid; k; k = k->next) {
        bool found = false;
        for (size_t i = 0; !found && i < sizeof known / sizeof *known; i++)
            if (key_is(k, known[i].name)) *known[i].slot = k, found = true, n_known++;
        for (size_t i = 0; !found && i < sizeof notes / sizeof *notes; i++)
            found = key_is(k, notes[i]);
        if (!found) {
            char m[160];
            snprintf(m, sizeof m, "unsupported keyword '%.*s'", k->klen > 64 ? 64 : (int)k->klen,
                     k->key);
            return fail(j, VKLLM_ERR_INVALID_ARG, m), UINT32_MAX;
        }
    }
    if (any_of) {
        if (n_known > 1)
            return fail(j, VKLLM_ERR_INVALID_ARG, "anyOf beside other keywords is not supported"),
                   UINT32_MAX;
        if (any_of->t != JV_ARR || any_of->n == 0 || any_of->n > 16)
            return fail(j, VKLLM_ERR_INVALID_ARG, "anyOf: expected a list of 1 to 16 schemas"),
                   UINT32_MAX;
        uint32_t kids[16], n = 0;
        for (const jv *b = any_of->kid; b; b = b->next) {
            char idx[16];
            const size_t saved = path_push(j, "anyOf", 5);
            path_push(j, idx, (size_t)snprintf(idx, sizeof idx, "%u", n));
            kids[n] = compile(j, b, depth);
            path_pop(j, saved);
            if (kids[n++] == UINT32_MAX) return UINT32_MAX;
        }
        return make_union(j, kids, n);
    }
    unsigned types = 0;
    if (type) {
        const jv *t1 = type->t == JV_ARR ? type->kid : type;
        for (const jv *t = t1; t; t = type->t == JV_ARR ? t->next : NULL) {
            const unsigned b = type_bit(t);
            if (!b) return fail(j, VKLLM_ERR_INVALID_ARG, "type: unknown type"), UINT32_MAX;
            types |= b;
        }
        if (!types) return fail(j, VKLLM_ERR_INVALID_ARG, "type: empty list"), UINT32_MAX;
    }
    if (en || cst) {
        if (en && en->t != JV_ARR)
            return fail(j, VKLLM_ERR_INVALID_ARG, "enum: not a list"), UINT32_MAX;
        const uint32_t from = j->sc->n_lits;
        for (const jv *e = en ? en->kid : cst; e; e = en ? e->next : NULL) {
            if (types && !(value_types(e) & types)) continue;
            const uint32_t off = j->sc->n_pool;
            if (!put_json(j, e) || !add_lit(j, off)) return UINT32_MAX;
        }
        return finish_enum(j, from);
    }
    if (!types) { /* no type: what the keywords are about, else any value */
        if (props || req || addl) types = T_OBJ;
        if (items || min_i || max_i) types |= T_ARR;
        if (min_l || max_l) types |= T_STR;
        if (!types) return any_node(j);
    }
    if ((types & T_NUM) && (types & T_INT)) types &= ~(unsigned)T_INT; /* numbers hold them */
    uint32_t kids[8], n = 0;
    if (types & T_OBJ) {
        kids[n] = compile_object(j, props, req, addl, depth);
        if (kids[n++] == UINT32_MAX) return UINT32_MAX;
    }
    if (types & T_ARR) {
        uint32_t child = UINT32_MAX, lo = 0, hi = UINT32_MAX;
        if (items && items->t == JV_ARR)
            return fail(j, VKLLM_ERR_INVALID_ARG, "items as a list (prefixItems) is not supported"),
                   UINT32_MAX;
        if (items) {
            const size_t saved = path_push(j, "items", 5);
            child = compile(j, items, depth + 1);
            path_pop(j, saved);
        } else {
            child = any_node(j);
        }
        if (child == UINT32_MAX || !read_count(j, min_i, &lo) || !read_count(j, max_i, &hi))
            return UINT32_MAX;
        if (lo > hi) return fail(j, VKLLM_ERR_INVALID_ARG, "minItems > maxItems"), UINT32_MAX;
        kids[n] = new_node(j, JN_ARRAY);
        if (kids[n] == UINT32_MAX) return UINT32_MAX;
        j->sc->nodes[kids[n]].child = child;
        j->sc->nodes[kids[n]].min = lo;
        j->sc->nodes[kids[n++]].max = hi;
    }
    if (types & T_STR) {
        uint32_t lo = 0, hi = UINT32_MAX;
        if (!read_count(j, min_l, &lo) || !read_count(j, max_l, &hi)) return UINT32_MAX;
        if (lo > hi) return fail(j, VKLLM_ERR_INVALID_ARG, "minLength > maxLength"), UINT32_MAX;
        kids[n] = new_node(j, JN_STRING);
        if (kids[n] == UINT32_MAX) return UINT32_MAX;
        j->sc->nodes[kids[n]].min = lo;
        j->sc->nodes[kids[n++]].max = hi;
    }
    if (types & (T_NUM | T_INT)) {
        kids[n] = new_node(j, types & T_NUM ? JN_NUMBER : JN_INTEGER);
        if (kids[n++] == UINT32_MAX) return UINT32_MAX;
    }
    if (types & (T_NULL | T_BOOL)) {
        const uint32_t from = j->sc->n_lits;
        static const char *const words[] = {"null", "false", "true"};
        for (int w = (types & T_NULL) ? 0 : 1; w < ((types & T_BOOL) ? 3 : 1); w++) {
            const uint32_t off = j->sc->n_pool;
            if (!pool_put(j, words[w], strlen(words[w])) || !add_lit(j, off)) return UINT32_MAX;
        }
        kids[n] = finish_enum(j, from);
        if (kids[n++] == UINT32_MAX) return UINT32_MAX;
    }
    return make_union(j, kids, n);
}

vkllm_status jsc_compile(const vkllm_allocator *a, const char *text, size_t len, jsc_schema **out,
                         core_err *err) {
    *out = NULL;
    jp j = {.a = a, .p = text, .end = text + len, .err = err, .any = UINT32_MAX};
    j.sc = core_calloc(a, 1, sizeof *j.sc);
    if (!j.sc) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "json schema: out of memory");
    j.sc->alloc = a;
    vkllm_status st = VKLLM_OK;
    jv *root = text ? read_value(&j, 0) : NULL;
    if (!text) fail(&j, VKLLM_ERR_INVALID_ARG, "no schema");
    if (root) {
        skip_ws(&j);
        if (j.p != j.end) fail(&j, VKLLM_ERR_INVALID_ARG, "text after the schema's JSON");
    }
    if (!j.failed) j.sc->str_node = new_node(&j, JN_STRING);
    if (!j.failed) j.sc->root = compile(&j, root, 0);
    if (j.failed) {
        char *m = err ? err->msg : NULL;
        st = m && strstr(m, "out of memory") ? VKLLM_ERR_OUT_OF_MEMORY : VKLLM_ERR_INVALID_ARG;
        jsc_free(j.sc);
        j.sc = NULL;
    }
    while (j.arena) {
        blk *n = j.arena->next;
        core_free(a, j.arena);
        j.arena = n;
    }
    *out = j.sc;
    return st;
}

void jsc_free(jsc_schema *sc) {
    if (!sc) return;
    const vkllm_allocator *a = sc->alloc;
    core_free(a, sc->nodes);
    core_free(a, sc->props);
    core_free(a, sc->kids);
    core_free(a, sc->lits);
    core_free(a, sc->pool);
    core_free(a, sc);
}
