/* Code point flags lookup, lenient UTF-8 decoding and GPT-2's byte <-> code point mapping.
 * See loader/unicode.h. Table data lives in the generated loader/unicode_data.c.
 */
#include "loader/unicode.h"

#include <stdbool.h>

uint16_t uni_flags(uint32_t cpt) {
    if (cpt < 256) return uni_flags_latin1[cpt];
    if (cpt >= UNI_MAX_CPT) return UNI_UNDEF;
    /* Last range whose start is <= cpt. Range 0 starts at 0, so lo stays valid. */
    size_t lo = 0, hi = uni_range_count;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (uni_range_start[mid] <= cpt)
            lo = mid;
        else
            hi = mid;
    }
    return uni_range_flags[lo];
}

static inline int is_cont(uint8_t b) {
    return (b & 0xC0) == 0x80;
}

uint32_t uni_decode(const uint8_t *s, size_t len, size_t *adv) {
    uint8_t b = s[0];
    *adv = 1;
    if (!(b & 0x80)) return b;
    if (!(b & 0x40)) return UNI_REPLACEMENT; /* a continuation byte cannot start a sequence */
    if (!(b & 0x20)) {
        if (len < 2 || !is_cont(s[1])) return UNI_REPLACEMENT;
        *adv = 2;
        return ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (!(b & 0x10)) {
        if (len < 3 || !is_cont(s[1]) || !is_cont(s[2])) return UNI_REPLACEMENT;
        *adv = 3;
        return ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    if (!(b & 0x08)) {
        if (len < 4 || !is_cont(s[1]) || !is_cont(s[2]) || !is_cont(s[3])) {
            return UNI_REPLACEMENT;
        }
        uint32_t c = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                     ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (c >= UNI_MAX_CPT) return UNI_REPLACEMENT; /* llama.cpp throws here and aborts */
        *adv = 4;
        return c;
    }
    return UNI_REPLACEMENT;
}

size_t uni_encode(uint32_t cpt, uint8_t out[4]) {
    if (cpt < 0x80) {
        out[0] = (uint8_t)cpt;
        return 1;
    }
    if (cpt < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cpt >> 6));
        out[1] = (uint8_t)(0x80 | (cpt & 0x3F));
        return 2;
    }
    if (cpt < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cpt >> 12));
        out[1] = (uint8_t)(0x80 | ((cpt >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cpt & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | ((cpt >> 18) & 0x07));
    out[1] = (uint8_t)(0x80 | ((cpt >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cpt >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cpt & 0x3F));
    return 4;
}

/* Printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 bytes
 * (0x00..0x20, 0x7F..0xA0, 0xAD) are given U+0100, U+0101, ... in byte order. */
uint32_t uni_byte_to_cpt(uint8_t b) {
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33 + (b - 0x7Fu);
    if (b == 0xAD) return 256u + 67;
    return b;
}

int uni_cpt_to_byte(uint32_t cpt) {
    if (cpt < 256) {
        bool printable = (cpt >= 0x21 && cpt <= 0x7E) || (cpt >= 0xA1 && cpt <= 0xAC) ||
                         (cpt >= 0xAE && cpt <= 0xFF);
        return printable ? (int)cpt : -1;
    }
    uint32_t n = cpt - 256;
    if (n < 33) return (int)n;
    if (n < 67) return (int)(0x7F + n - 33);
    if (n == 67) return 0xAD;
    return -1;
}
