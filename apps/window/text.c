/* The text panel: a status line, a rule, and the story, word-wrapped into a fixed grid of
 * cells and scrolled up when full. Tokens arrive as UTF-8 pieces that may split a character,
 * and letters are placed as they arrive, so a word that runs past the edge is moved to the
 * next line as a whole once it no longer fits (the way a terminal with word wrap would). */
#include "win.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 1024

static uint32_t cell(const win_text *t, uint32_t cp, uint32_t ink) {
    return (uint32_t)win_font_glyph(t->font, cp) | ink << 16;
}

static uint32_t *line_at(win_text *t, uint32_t i) {
    return t->lines + (size_t)((t->first + i) % t->story_rows) * t->cols;
}

static void clear_line(win_text *t, uint32_t *line) {
    const uint32_t blank = cell(t, ' ', WIN_INK_TEXT);
    for (uint32_t c = 0; c < t->cols; c++)
        line[c] = blank;
}

bool win_text_init(win_text *t, const win_font *f) {
    memset(t, 0, sizeof *t);
    t->font = f;
    t->word_start = -1;
    return true;
}

void win_text_free(win_text *t) {
    free(t->lines);
    free(t->log);
    t->lines = NULL;
    t->log = NULL;
}

static void place(win_text *t, const char *s, size_t n);

bool win_text_layout(win_text *t, uint32_t cols, uint32_t rows) {
    free(t->lines);
    t->lines = NULL;
    t->cols = t->rows = t->story_rows = 0;
    if (cols == 0 || cols > MAX_COLS || rows < 3) return false; /* too small: no panel */
    t->lines = malloc((size_t)(rows - 2) * cols * sizeof *t->lines);
    if (!t->lines) return false;
    t->cols = cols;
    t->rows = rows;
    t->story_rows = rows - 2;
    for (uint32_t i = 0; i < t->story_rows; i++)
        clear_line(t, t->lines + (size_t)i * cols);
    t->first = 0;
    t->n_lines = 1;
    t->col = 0;
    t->word_start = -1;
    t->utf8_need = 0;
    t->ink = WIN_INK_TEXT;
    place(t, t->log, t->log_len); /* the text so far, wrapped to the new width */
    return true;
}

static void new_line(win_text *t) {
    if (t->n_lines < t->story_rows) {
        t->n_lines++;
    } else {
        t->first = (t->first + 1) % t->story_rows; /* scroll: the top line is reused */
    }
    clear_line(t, line_at(t, t->n_lines - 1));
    t->col = 0;
}

static void put(win_text *t, uint32_t cp) {
    if (cp == '\n') {
        new_line(t);
        t->word_start = -1;
        return;
    }
    if (cp == '\t') cp = ' ';
    if (cp < 0x20 || cp == 0x7F) return; /* other control characters draw nothing */
    if (cp == ' ') {
        t->word_start = -1;
        /* a space at the wrap point ends the line; spaces do not start a wrapped line */
        if (t->col < t->cols) line_at(t, t->n_lines - 1)[t->col++] = cell(t, ' ', t->ink);
        return;
    }
    if (t->word_start < 0) t->word_start = (int32_t)t->col;
    if (t->col >= t->cols) {
        if (t->word_start > 0) {
            /* the word does not fit: take what is written of it to the next line */
            uint32_t word[MAX_COLS];
            uint32_t *last = line_at(t, t->n_lines - 1);
            const uint32_t n = t->cols - (uint32_t)t->word_start;
            memcpy(word, last + t->word_start, n * sizeof *word);
            const uint32_t blank = cell(t, ' ', WIN_INK_TEXT);
            for (uint32_t c = (uint32_t)t->word_start; c < t->cols; c++)
                last[c] = blank;
            new_line(t);
            memcpy(line_at(t, t->n_lines - 1), word, n * sizeof *word);
            t->col = n;
        } else {
            new_line(t); /* a word as long as the line is broken where it reaches the edge */
        }
        t->word_start = 0;
    }
    line_at(t, t->n_lines - 1)[t->col++] = cell(t, cp, t->ink);
}

/* Lays out logged bytes: bytes 1..4 switch the ink (see win_text_append). */
static void place(win_text *t, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t b = (uint8_t)s[i];
        if (b >= 1 && b <= 4) {
            t->ink = b - 1u;
            continue;
        }
        if (!t->lines) continue;
        if (t->utf8_need > 0) {
            if ((b & 0xC0) == 0x80) {
                t->utf8_cp = t->utf8_cp << 6 | (b & 0x3F);
                if (--t->utf8_need == 0) put(t, t->utf8_cp);
                continue;
            }
            t->utf8_need = 0;
            put(t, 0xFFFD); /* a broken sequence: show the font's fallback, go on */
        }
        if (b < 0x80)
            put(t, b);
        else if (b >= 0xC0 && b < 0xE0)
            t->utf8_cp = b & 0x1F, t->utf8_need = 1;
        else if (b >= 0xE0 && b < 0xF0)
            t->utf8_cp = b & 0x0F, t->utf8_need = 2;
        else if (b >= 0xF0 && b < 0xF8)
            t->utf8_cp = b & 0x07, t->utf8_need = 3;
        else
            put(t, 0xFFFD);
    }
}

/* The log keeps the text (with ink switches as bytes 1..4, which text never needs: control
 * characters draw nothing) so that a resized panel can wrap it again; it keeps the last
 * LOG_KEEP bytes, far more than a panel shows. */
#define LOG_KEEP (64u << 10)

static void log_add(win_text *t, const char *s, size_t n) {
    if (t->log_len > LOG_KEEP && t->log_len + n > 2 * LOG_KEEP) {
        /* drop the oldest half at a line start, keeping the ink in effect there */
        size_t cut = t->log_len - LOG_KEEP;
        while (cut < t->log_len && t->log[cut - 1] != '\n')
            cut++;
        uint8_t ink = 1;
        for (size_t i = 0; i < cut; i++)
            if (t->log[i] >= 1 && t->log[i] <= 4) ink = (uint8_t)t->log[i];
        t->log[0] = (char)ink;
        memmove(t->log + 1, t->log + cut, t->log_len - cut);
        t->log_len = t->log_len - cut + 1;
    }
    if (t->log_len + n > t->log_cap) {
        size_t cap = t->log_cap ? t->log_cap : 4096;
        while (cap < t->log_len + n)
            cap *= 2;
        char *p = realloc(t->log, cap);
        if (!p) return; /* the grid still gets the text; only a later re-wrap loses it */
        t->log = p;
        t->log_cap = cap;
    }
    memcpy(t->log + t->log_len, s, n);
    t->log_len += n;
}

void win_text_append(win_text *t, const char *s, size_t n, uint32_t ink) {
    char mark = (char)(1 + ink);
    if (ink != t->log_ink || t->log_len == 0) {
        log_add(t, &mark, 1);
        place(t, &mark, 1);
        t->log_ink = ink;
    }
    /* the model's text may hold bytes 1..4 (they draw nothing): keep them out of the log */
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && !((uint8_t)s[i] >= 1 && (uint8_t)s[i] <= 4)) continue;
        log_add(t, s + start, i - start);
        place(t, s + start, i - start);
        start = i + 1;
    }
}

void win_text_set_status(win_text *t, const char *s) {
    snprintf(t->status, sizeof t->status, "%s", s);
}

void win_text_compose(const win_text *t, uint32_t *cells) {
    const uint32_t blank = cell(t, ' ', WIN_INK_STATUS);
    /* status line (ASCII: it is made by this program) */
    for (uint32_t c = 0; c < t->cols; c++) {
        const size_t len = strlen(t->status);
        cells[c] = c < len ? cell(t, (uint8_t)t->status[c], WIN_INK_STATUS) : blank;
    }
    /* a rule under it, in box drawing if the font has it */
    const uint32_t rule_cp = win_font_glyph(t->font, 0x2500) != t->font->fallback ? 0x2500 : '-';
    for (uint32_t c = 0; c < t->cols; c++)
        cells[t->cols + c] = cell(t, rule_cp, WIN_INK_DIM);
    uint32_t *story = cells + 2 * (size_t)t->cols;
    for (uint32_t r = 0; r < t->story_rows; r++) {
        const uint32_t *src = t->lines + (size_t)((t->first + r) % t->story_rows) * t->cols;
        memcpy(story + (size_t)r * t->cols, src, t->cols * sizeof *src);
    }
}
