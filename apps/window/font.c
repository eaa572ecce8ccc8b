/* The panel's font: a Linux console font (PSF1 or PSF2, from Debian's console-setup-linux),
 * decompressed and embedded at build time (apps/window/font_to_c.cmake), so the program needs
 * no files at run time. The font's Unicode table maps code points to glyphs; the glyph bitmaps
 * go to the GPU as they are and the fragment shader reads their bits. */
#include "win.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char win_font_psf[];
extern const uint32_t win_font_psf_size;

#define PSF1_MAGIC0 0x36
#define PSF1_MAGIC1 0x04
#define PSF1_MODE512 0x01
#define PSF1_MODEHASTAB 0x02
#define PSF1_MODESEQ 0x04
#define PSF1_SEPARATOR 0xFFFF
#define PSF1_STARTSEQ 0xFFFE
#define PSF2_MAGIC 0x864ab572u
#define PSF2_HAS_UNICODE_TABLE 0x01
#define PSF2_SEPARATOR 0xFF
#define PSF2_STARTSEQ 0xFE

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void map_set(win_font *f, uint32_t cp, uint32_t glyph) {
    /* the first glyph listed for a code point wins; the grid holds 16-bit glyph indices */
    if (cp < 0x10000 && f->map[cp] == UINT16_MAX) f->map[cp] = (uint16_t)glyph;
}

/* PSF1 table: per glyph, UCS-2 code points, then optional 0xFFFE sequences (combining
 * forms, which a grid of single cells cannot use), then 0xFFFF. */
static void table_psf1(win_font *f, const uint8_t *p, const uint8_t *end) {
    for (uint32_t g = 0; g < f->n_glyphs && p + 1 < end; g++) {
        bool seq = false;
        while (p + 1 < end) {
            const uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8;
            p += 2;
            if (v == PSF1_SEPARATOR) break;
            if (v == PSF1_STARTSEQ)
                seq = true;
            else if (!seq)
                map_set(f, v, g);
        }
    }
}

/* PSF2 table: per glyph, UTF-8 code points, then optional 0xFE sequences, then 0xFF. */
static void table_psf2(win_font *f, const uint8_t *p, const uint8_t *end) {
    for (uint32_t g = 0; g < f->n_glyphs && p < end; g++) {
        bool seq = false;
        while (p < end) {
            const uint8_t b = *p;
            if (b == PSF2_SEPARATOR) {
                p++;
                break;
            }
            if (b == PSF2_STARTSEQ) {
                seq = true;
                p++;
                continue;
            }
            uint32_t cp = b, extra = 0;
            if (b >= 0xF0)
                cp = b & 0x07, extra = 3;
            else if (b >= 0xE0)
                cp = b & 0x0F, extra = 2;
            else if (b >= 0xC0)
                cp = b & 0x1F, extra = 1;
            p++;
            for (uint32_t i = 0; i < extra && p < end; i++)
                cp = cp << 6 | (*p++ & 0x3F);
            if (!seq) map_set(f, cp, g);
        }
    }
}

bool win_font_load(win_font *f, char *err, size_t err_cap) {
    memset(f, 0, sizeof *f);
    const uint8_t *d = win_font_psf;
    const size_t n = win_font_psf_size;
    const uint8_t *table = NULL;
    bool psf2 = false;
    if (n >= 4 && d[0] == PSF1_MAGIC0 && d[1] == PSF1_MAGIC1) {
        f->width = 8;
        f->height = d[3];
        f->glyph_bytes = d[3];
        f->n_glyphs = (d[2] & PSF1_MODE512) ? 512 : 256;
        f->glyphs = d + 4;
        if (d[2] & (PSF1_MODEHASTAB | PSF1_MODESEQ)) table = d + 4 + f->n_glyphs * f->glyph_bytes;
    } else if (n >= 32 && rd32(d) == PSF2_MAGIC) {
        psf2 = true;
        const uint32_t header = rd32(d + 8), flags = rd32(d + 12);
        f->n_glyphs = rd32(d + 16);
        f->glyph_bytes = rd32(d + 20);
        f->height = rd32(d + 24);
        f->width = rd32(d + 28);
        if (header > n) goto bad;
        f->glyphs = d + header;
        if (flags & PSF2_HAS_UNICODE_TABLE)
            table = f->glyphs + (size_t)f->n_glyphs * f->glyph_bytes;
    } else {
        goto bad;
    }
    f->row_bytes = (f->width + 7) / 8;
    if (f->width == 0 || f->height == 0 || f->n_glyphs == 0 || f->n_glyphs > 0xFFFF ||
        f->glyph_bytes < f->row_bytes * f->height ||
        (size_t)(f->glyphs - d) + (size_t)f->n_glyphs * f->glyph_bytes > n)
        goto bad;
    f->map = malloc(0x10000 * sizeof *f->map);
    if (!f->map) {
        snprintf(err, err_cap, "out of memory");
        return false;
    }
    memset(f->map, 0xFF, 0x10000 * sizeof *f->map);
    if (table && psf2)
        table_psf2(f, table, d + n);
    else if (table)
        table_psf1(f, table, d + n);
    else
        for (uint32_t cp = 0; cp < f->n_glyphs; cp++)
            map_set(f, cp, cp); /* no table: Latin-1 */
    f->fallback = f->map['?'] != UINT16_MAX ? f->map['?'] : 0;
    return true;
bad:
    snprintf(err, err_cap, "the embedded font is not a valid PSF1/PSF2 font");
    return false;
}

void win_font_free(win_font *f) {
    free(f->map);
    f->map = NULL;
}

uint16_t win_font_glyph(const win_font *f, uint32_t cp) {
    if (cp < 0x10000 && f->map[cp] != UINT16_MAX) return f->map[cp];
    return f->fallback;
}
