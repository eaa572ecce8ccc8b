/* Human-readable rendering of GGUF metadata values for `vkllm info` (gguf_kv_format).
 *
 * Numbers print in their shortest round-tripping form, strings quoted with C-style escapes
 * for control bytes and invalid UTF-8 and cut after about 60 characters, arrays as
 * "[N x type] [first, few, elements, ...]". Output always fits the caller's buffer and is
 * NUL-terminated; a rendering that does not fit ends in "...". Reads only values that
 * gguf.c validated at open.
 */
#include "loader/gguf_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FMT_STR_MAX 60      /* characters of a string value shown */
#define FMT_ARR_STR_MAX 32  /* characters of each string shown inside an array */
#define FMT_ARR_NUM_ITEMS 8 /* numeric array elements shown */
#define FMT_ARR_STR_ITEMS 4 /* string array elements shown */

typedef struct sbuf {
    char *p;
    size_t cap; /* > 0 */
    size_t n;   /* < cap */
    bool full;  /* something did not fit */
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->full) return;
    size_t room = b->cap - 1 - b->n;
    if (n > room) {
        n = room;
        b->full = true;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...) CORE_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF), or 0 if the bytes there are not one. */
static size_t utf8_len(const uint8_t *p, uint64_t left) {
    uint8_t c = p[0];
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else
        return 0;
    if (n > left) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return n;
}

/* Quoted, escaped, at most max_chars characters; `"..."...` marks a cut. */
static void put_str(sbuf *b, const char *s, uint64_t len, size_t max_chars) {
    const uint8_t *p = (const uint8_t *)s;
    sb_put(b, "\"", 1);
    uint64_t i = 0;
    size_t chars = 0;
    for (; i < len && chars < max_chars && !b->full; chars++) {
        uint8_t c = p[i];
        const char *esc = NULL;
        switch (c) {
        case '\n':
            esc = "\\n";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        default:
            break;
        }
        if (esc) {
            sb_put(b, esc, 2);
            i++;
            continue;
        }
        size_t n = c >= 0x20 && c != 0x7f ? utf8_len(p + i, len - i) : 0;
        if (n) {
            sb_put(b, (const char *)p + i, n);
            i += n;
        } else {
            sb_printf(b, "\\x%02x", c);
            i++;
        }
    }
    sb_put(b, "\"", 1);
    if (i < len) sb_put(b, "...", 3);
}

/* Shortest precision that reads back to the same value (%.9g / %.17g always do). */
static void put_f64(sbuf *b, double v, bool single) {
    char tmp[40];
    for (int prec = single ? 6 : 15; prec <= (single ? 9 : 17); prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        bool same = single ? strtof(tmp, NULL) == (float)v : strtod(tmp, NULL) == v;
        if (same) break;
    }
    sb_put(b, tmp, strlen(tmp));
}

static void put_num(sbuf *b, gguf_type t, const uint8_t *p) {
    gguf_num n;
    if (!gguf_num_load(t, p, &n)) return;
    if (t == GGUF_TYPE_BOOL) {
        sb_put(b, n.u ? "true" : "false", n.u ? 4 : 5);
        return;
    }
    switch (n.kind) {
    case GGUF_NUM_U:
        sb_printf(b, "%llu", (unsigned long long)n.u);
        break;
    case GGUF_NUM_I:
        sb_printf(b, "%lld", (long long)n.i);
        break;
    default:
        put_f64(b, n.f, t == GGUF_TYPE_FLOAT32);
        break;
    }
}

static void put_array(sbuf *b, const gguf_file *f, uint64_t i) {
    const gguf_kv *kv = &f->kvs[i];
    sb_printf(b, "[%llu x %s]", (unsigned long long)kv->n, gguf_type_name(kv->arr_type));
    if (kv->arr_type == GGUF_TYPE_ARRAY) return; /* nested arrays: shape only */
    bool strs = kv->arr_type == GGUF_TYPE_STRING;
    uint64_t show = strs ? FMT_ARR_STR_ITEMS : FMT_ARR_NUM_ITEMS;
    uint32_t esz = gguf_type_size(kv->arr_type);
    sb_put(b, " [", 2);
    for (uint64_t j = 0; j < kv->n && j < show && !b->full; j++) {
        if (j) sb_put(b, ", ", 2);
        if (strs) {
            gguf_str s;
            if (gguf_arr_str(f, i, j, &s)) put_str(b, s.ptr, s.len, FMT_ARR_STR_MAX);
        } else {
            put_num(b, kv->arr_type, f->base + kv->val_off + j * esz);
        }
    }
    if (kv->n > show) sb_put(b, ", ...", 5);
    sb_put(b, "]", 1);
}

void gguf_kv_format(const gguf_file *f, uint64_t i, char *buf, size_t cap) {
    if (!buf || cap == 0) return;
    buf[0] = '\0';
    if (!f || i >= f->n_kv) return;
    sbuf b = {buf, cap, 0, false};
    const gguf_kv *kv = &f->kvs[i];
    switch (kv->type) {
    case GGUF_TYPE_STRING:
        put_str(&b, (const char *)f->base + kv->val_off, kv->n, FMT_STR_MAX);
        break;
    case GGUF_TYPE_ARRAY:
        put_array(&b, f, i);
        break;
    default:
        put_num(&b, kv->type, f->base + kv->val_off);
        break;
    }
    /* Did not fit: end with "..." so a cut rendering cannot pass for a whole one. */
    if (b.full && cap >= 4) {
        size_t at = cap - 4;
        while (at > 0 && ((uint8_t)buf[at] & 0xc0) == 0x80)
            at--; /* not inside a character */
        memcpy(buf + at, "...", 4);
    }
}
