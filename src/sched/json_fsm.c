/* The automaton over a compiled schema (json_node.h): a stack of frames, one per open value,
 * fed one byte at a time. A frame's step consumes the byte, rejects it, finishes its value
 * (pop), or finds its value already finished (a number or enum literal ends where a byte
 * cannot extend it) and hands the byte to its parent. Every state reached can still be
 * completed: a byte is rejected as soon as no completion could follow it (a lone low
 * surrogate at its second hex digit, a key no remaining property starts with, ...). */
#include "sched/json_node.h"

#include <string.h>

enum { R_OK, R_REJECT, R_DONE, R_PASS, R_AGAIN };

static bool is_ws(uint8_t c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* Whitespace in a gap: consumed while under the bound. */
static int gap(jsc_frame *f, uint8_t c) {
    if (!is_ws(c)) return -1;
    if (f->ws >= JSC_MAX_WS) return R_REJECT;
    f->ws++;
    return R_OK;
}

static int hexv(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int push(jsc_state *st, uint32_t node) {
    if (st->depth >= JSC_MAX_DEPTH) return R_REJECT;
    st->f[st->depth++] = (jsc_frame){.node = node};
    return R_AGAIN;
}

static int step_string(const jsc_node *n, jsc_frame *f, uint8_t c) {
    switch (f->ph) {
    case 0:
        return c == '"' ? (f->ph = 1, R_OK) : R_REJECT;
    case 1: /* body; a: code points so far */
        if (c == '"') return f->a >= n->min ? R_DONE : R_REJECT;
        if (f->a >= n->max || c < 0x20) return R_REJECT;
        if (c == '\\') return f->ph = 2, R_OK;
        if (c < 0x80) return f->a++, R_OK;
        /* UTF-8 (RFC 3629 table 3-7): x continuation bytes, the next in [b & 0xff, b >> 8] */
        if (c >= 0xC2 && c <= 0xDF)
            f->x = 1, f->b = 0x80 | 0xBF << 8;
        else if (c == 0xE0)
            f->x = 2, f->b = 0xA0 | 0xBF << 8;
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
            f->x = 2, f->b = 0x80 | 0xBF << 8;
        else if (c == 0xED)
            f->x = 2, f->b = 0x80 | 0x9F << 8;
        else if (c == 0xF0)
            f->x = 3, f->b = 0x90 | 0xBF << 8;
        else if (c >= 0xF1 && c <= 0xF3)
            f->x = 3, f->b = 0x80 | 0xBF << 8;
        else if (c == 0xF4)
            f->x = 3, f->b = 0x80 | 0x8F << 8;
        else
            return R_REJECT;
        f->a++;
        f->ph = 7;
        return R_OK;
    case 7:
        if (c < (f->b & 0xff) || c > f->b >> 8) return R_REJECT;
        f->b = 0x80 | 0xBF << 8;
        if (--f->x == 0) f->ph = 1;
        return R_OK;
    case 2: /* after a backslash */
        if (c == 'u') return f->ph = 3, f->x = 0, f->b = 0, R_OK;
        if (!strchr("\"\\/bfnrt", c) || c == 0) return R_REJECT;
        f->a++;
        f->ph = 1;
        return R_OK;
    case 3: { /* \uXXXX: x digits so far, b their value */
        const int h = hexv(c);
        if (h < 0) return R_REJECT;
        f->b = f->b << 4 | (uint32_t)h;
        f->x++;
        if (f->x == 2 && f->b >= 0xDC && f->b <= 0xDF) return R_REJECT; /* a lone low surrogate */
        if (f->x < 4) return R_OK;
        if (f->b >= 0xD800 && f->b <= 0xDBFF) return f->ph = 4, R_OK; /* its low half next */
        f->a++;
        f->ph = 1;
        return R_OK;
    }
    case 4:
        return c == '\\' ? (f->ph = 5, R_OK) : R_REJECT;
    case 5:
        return c == 'u' ? (f->ph = 6, f->x = 0, R_OK) : R_REJECT;
    case 6: { /* the low surrogate: DC00-DFFF */
        const int h = hexv(c);
        if (h < 0 || (f->x == 0 && h != 0xD) || (f->x == 1 && h < 0xC)) return R_REJECT;
        if (++f->x < 4) return R_OK;
        f->a++;
        f->ph = 1;
        return R_OK;
    }
    }
    return R_REJECT;
}

/* Number phases: 1 after '-', 2 a leading 0, 3 integer digits, 4 after '.', 5 fraction
 * digits, 6 after 'e', 7 after the exponent's sign, 8 exponent digits. x: digits of the
 * current part, bounded so that a number ends. */
static bool num_can_end(const jsc_frame *f) {
    return f->ph == 2 || f->ph == 3 || f->ph == 5 || f->ph == 8;
}

static int step_number(const jsc_node *n, jsc_frame *f, uint8_t c) {
    const bool digit = c >= '0' && c <= '9', real = n->kind == JN_NUMBER;
    switch (f->ph) {
    case 0:
        if (c == '-') return f->ph = 1, R_OK;
        /* fall through */
    case 1:
        if (c == '0') return f->ph = 2, R_OK;
        if (digit) return f->ph = 3, f->x = 1, R_OK;
        return R_REJECT;
    case 3:
        if (digit) return f->x < 15 ? (f->x++, R_OK) : R_PASS;
        /* fall through */
    case 2:
        if (real && c == '.') return f->ph = 4, R_OK;
        if (real && (c == 'e' || c == 'E')) return f->ph = 6, R_OK;
        return R_PASS;
    case 4:
        return digit ? (f->ph = 5, f->x = 1, R_OK) : R_REJECT;
    case 5:
        if (digit) return f->x < 15 ? (f->x++, R_OK) : R_PASS;
        if (c == 'e' || c == 'E') return f->ph = 6, R_OK;
        return R_PASS;
    case 6:
        if (c == '+' || c == '-') return f->ph = 7, R_OK;
        /* fall through */
    case 7:
        return digit ? (f->ph = 8, f->x = 1, R_OK) : R_REJECT;
    case 8:
        if (digit && f->x < 2) return f->x++, R_OK;
        return R_PASS;
    }
    return R_REJECT;
}

/* Enum: a..b the literals whose first c bytes were read (lits sorted: a shorter one that is a
 * prefix of the others comes first). */
static const jsc_lit *lit(const jsc_schema *sc, uint32_t i) {
    return &sc->lits[i];
}

static bool enum_can_end(const jsc_schema *sc, const jsc_frame *f) {
    return f->ph && lit(sc, f->a)->len == f->c;
}

static int step_enum(const jsc_schema *sc, const jsc_node *n, jsc_frame *f, uint8_t c) {
    if (f->ph == 0) f->ph = 1, f->a = n->a, f->b = n->a + n->b, f->c = 0;
    const uint32_t pos = f->c;
    uint32_t lo = f->a + (lit(sc, f->a)->len == pos); /* the rest are longer than pos */
    uint32_t hi = f->b;
    /* first with byte >= c at pos, then first with byte > c */
    uint32_t l = lo, h = hi;
    while (l < h) {
        const uint32_t m = (l + h) / 2;
        if ((uint8_t)sc->pool[lit(sc, m)->off + pos] < c)
            l = m + 1;
        else
            h = m;
    }
    const uint32_t first = l;
    h = hi;
    while (l < h) {
        const uint32_t m = (l + h) / 2;
        if ((uint8_t)sc->pool[lit(sc, m)->off + pos] <= c)
            l = m + 1;
        else
            h = m;
    }
    if (first == l) return enum_can_end(sc, f) ? R_PASS : R_REJECT;
    f->a = first;
    f->b = l;
    f->c = pos + 1;
    return f->b - f->a == 1 && lit(sc, f->a)->len == f->c ? R_DONE : R_OK;
}

/* Object with properties in order: a is the next property that may come, c the one being
 * keyed or valued, b the key bytes read. A key may be any property from a up to the first
 * required one (inclusive). */
static uint32_t key_limit(const jsc_schema *sc, const jsc_node *n, uint32_t a) {
    for (uint32_t i = a; i < n->b; i++)
        if (sc->props[n->a + i].required) return i + 1;
    return n->b;
}

static bool required_left(const jsc_schema *sc, const jsc_node *n, uint32_t a) {
    const uint32_t lim = key_limit(sc, n, a);
    return lim > a && sc->props[n->a + lim - 1].required;
}

static int step_object(const jsc_schema *sc, const jsc_node *n, jsc_state *st, jsc_frame *f,
                       uint8_t c) {
    int g;
    switch (f->ph) {
    case 0:
        return c == '{' ? (f->ph = 1, R_OK) : R_REJECT;
    case 1: /* after '{' */
    case 5: /* after ',' */
        if ((g = gap(f, c)) >= 0) return g;
        if (c == '}' && f->ph == 1) return required_left(sc, n, f->a) ? R_REJECT : R_DONE;
        if (c != '"' || f->a >= n->b) return R_REJECT;
        f->ph = 2, f->ws = 0, f->b = 0, f->c = f->a;
        return R_OK;
    case 2: { /* in a key: props[c] matched its first b bytes */
        const uint32_t lim = key_limit(sc, n, f->a), pos = f->b;
        const jsc_prop *cur = &sc->props[n->a + f->c];
        for (uint32_t i = f->c; i < lim; i++) {
            const jsc_prop *p = &sc->props[n->a + i];
            if (p->key_len < pos || memcmp(sc->pool + p->key, sc->pool + cur->key, pos) != 0)
                continue;
            if (c == '"' && p->key_len == pos) {
                f->c = i, f->a = i + 1, f->ph = 3;
                return R_OK;
            }
            if (c != '"' && p->key_len > pos && (uint8_t)sc->pool[p->key + pos] == c) {
                f->c = i, f->b = pos + 1;
                return R_OK;
            }
        }
        return R_REJECT;
    }
    case 3: /* before ':' */
        if ((g = gap(f, c)) >= 0) return g;
        return c == ':' ? (f->ph = 4, f->ws = 0, R_OK) : R_REJECT;
    case 4: /* before the value */
        if ((g = gap(f, c)) >= 0) return g;
        f->ph = 6, f->ws = 0;
        return push(st, sc->props[n->a + f->c].node);
    case 6: /* after a value */
        if ((g = gap(f, c)) >= 0) return g;
        if (c == ',' && f->a < n->b) return f->ph = 5, f->ws = 0, R_OK;
        if (c == '}') return required_left(sc, n, f->a) ? R_REJECT : R_DONE;
        return R_REJECT;
    }
    return R_REJECT;
}

static int step_map(const jsc_schema *sc, const jsc_node *n, jsc_state *st, jsc_frame *f,
                    uint8_t c) {
    int g;
    switch (f->ph) {
    case 0:
        return c == '{' ? (f->ph = 1, R_OK) : R_REJECT;
    case 1: /* after '{' */
    case 2: /* after ',' */
        if ((g = gap(f, c)) >= 0) return g;
        if (c == '}' && f->ph == 1) return R_DONE;
        if (c != '"') return R_REJECT;
        f->ph = 3, f->ws = 0;
        return push(st, sc->str_node);
    case 3: /* before ':' */
        if ((g = gap(f, c)) >= 0) return g;
        return c == ':' ? (f->ph = 4, f->ws = 0, R_OK) : R_REJECT;
    case 4:
        if ((g = gap(f, c)) >= 0) return g;
        f->ph = 6, f->ws = 0;
        return push(st, n->child);
    case 6:
        if ((g = gap(f, c)) >= 0) return g;
        if (c == ',') return f->ph = 2, f->ws = 0, R_OK;
        return c == '}' ? R_DONE : R_REJECT;
    }
    return R_REJECT;
}

/* a: items so far */
static int step_array(const jsc_node *n, jsc_state *st, jsc_frame *f, uint8_t c) {
    int g;
    switch (f->ph) {
    case 0:
        return c == '[' ? (f->ph = 1, R_OK) : R_REJECT;
    case 1: /* after '[' */
        if ((g = gap(f, c)) >= 0) return g;
        if (c == ']') return n->min == 0 ? R_DONE : R_REJECT;
        /* fall through */
    case 2: /* after ',' (or the first item's first byte) */
        if ((g = gap(f, c)) >= 0) return g;
        if (f->a >= n->max) return R_REJECT;
        f->ph = 3, f->ws = 0, f->a++;
        return push(st, n->child);
    case 3: /* after an item */
        if ((g = gap(f, c)) >= 0) return g;
        if (c == ',' && f->a < n->max) return f->ph = 2, f->ws = 0, R_OK;
        if (c == ']' && f->a >= n->min) return R_DONE;
        return R_REJECT;
    }
    return R_REJECT;
}

void jsc_init(const jsc_schema *sc, jsc_state *st) {
    st->depth = 1;
    st->f[0] = (jsc_frame){.node = sc->root};
}

bool jsc_feed(const jsc_schema *sc, jsc_state *st, uint8_t c) {
    for (;;) {
        if (st->depth == 0) return false;
        jsc_frame *f = &st->f[st->depth - 1];
        const jsc_node *n = &sc->nodes[f->node];
        int r;
        switch (n->kind) {
        case JN_UNION: {
            r = R_REJECT;
            for (uint32_t k = 0; k < n->b; k++) {
                const uint32_t kid = sc->kids[n->a + k];
                if (jsc_first_has(&sc->nodes[kid], c)) {
                    *f = (jsc_frame){.node = kid};
                    r = R_AGAIN;
                    break;
                }
            }
            break;
        }
        case JN_OBJECT:
            r = step_object(sc, n, st, f, c);
            break;
        case JN_MAP:
            r = step_map(sc, n, st, f, c);
            break;
        case JN_ARRAY:
            r = step_array(n, st, f, c);
            break;
        case JN_STRING:
            r = step_string(n, f, c);
            break;
        case JN_NUMBER:
        case JN_INTEGER:
            r = step_number(n, f, c);
            break;
        case JN_ENUM:
            r = step_enum(sc, n, f, c);
            break;
        default:
            r = R_REJECT;
        }
        switch (r) {
        case R_OK:
            return true;
        case R_DONE:
            st->depth--;
            return true;
        case R_PASS:
            st->depth--;
            continue; /* the value ended before c: the parent reads it */
        case R_AGAIN:
            continue; /* a new frame reads c */
        default:
            return false;
        }
    }
}

bool jsc_feed_bytes(const jsc_schema *sc, jsc_state *st, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (!jsc_feed(sc, st, b[i])) return false;
    return true;
}

bool jsc_can_end(const jsc_schema *sc, const jsc_state *st) {
    if (st->depth == 0) return true;
    if (st->depth > 1) return false;
    const jsc_frame *f = &st->f[0];
    const jsc_node *n = &sc->nodes[f->node];
    if (n->kind == JN_NUMBER || n->kind == JN_INTEGER) return num_can_end(f);
    if (n->kind == JN_ENUM) return enum_can_end(sc, f);
    return false;
}

bool jsc_in_string_body(const jsc_schema *sc, const jsc_frame *f, uint32_t *room) {
    const jsc_node *n = &sc->nodes[f->node];
    if (n->kind != JN_STRING || f->ph != 1) return false;
    *room = n->max - f->a;
    return true;
}
