/* Pre-tokenizers: split a fragment of text (as code points) into the words BPE runs on.
 *
 * llama.cpp applies a list of regexes per model family (llama-vocab.cpp, llm_tokenizer_bpe);
 * each regex refines the previous split: inside every current piece, its matches and the gaps
 * between them become pieces. Three of its regexes (GPT-2, Llama 3, Qwen 2) run through
 * hand-written matchers in llama.cpp's unicode.cpp, and the ids depend on their exact
 * behaviour at piece edges, so the matchers below follow that behaviour rather than a
 * textbook regex engine (e.g. "\s+(?!\S)" keeps a trailing whitespace run whole only at the
 * end of a piece). The simple character-class regexes (\p{N}, digit runs, ...) run in
 * llama.cpp through std::regex and are plain run splits here.
 *
 * A split is recorded as word-start marks in bnd[], so refining is just adding marks.
 * No allocation; works on any code points (invalid input was already mapped to U+FFFD).
 */
#include "loader/tok_internal.h"
#include "loader/unicode.h"

#define OUT_OF_RANGE 0xFFFFFFFFu

/* One piece [a, b) of the code point array; positions outside it read as "no character". */
typedef struct piece {
    const uint32_t *cpts;
    size_t a, b;
    uint8_t *bnd;
    size_t prev_end; /* end of the last word emitted */
} piece;

static inline uint32_t p_cpt(const piece *p, size_t pos) {
    return (pos >= p->a && pos < p->b) ? p->cpts[pos] : OUT_OF_RANGE;
}
static inline uint16_t p_flags(const piece *p, size_t pos) {
    return (pos >= p->a && pos < p->b) ? uni_flags(p->cpts[pos]) : 0;
}
/* Ends the current word at end. Returns its length. */
static inline size_t p_emit(piece *p, size_t end) {
    size_t len = end - p->prev_end;
    if (len > 0) {
        p->bnd[p->prev_end] = 1;
        p->bnd[end] = 1;
    }
    p->prev_end = end;
    return len;
}

static inline bool is_wln(uint16_t f) {
    return (f & (UNI_WHITESPACE | UNI_LETTER | UNI_NUMBER));
}

/* Only ASCII letters lower-case to the letters a contraction uses (checked against the
 * Unicode simple lowercase mappings), so ASCII folding is the whole of "(?i:...)" here. */
static inline uint32_t ascii_lower(uint32_t c) {
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* 's|'t|'re|'ve|'m|'ll|'d at pos, optionally case-insensitive: length matched or 0. */
static size_t match_contraction(const piece *p, size_t pos, bool fold) {
    if (p_cpt(p, pos) != '\'' || pos + 1 >= p->b) return 0;
    uint32_t c1 = p_cpt(p, pos + 1);
    if (fold) c1 = ascii_lower(c1);
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    if (pos + 2 < p->b) {
        uint32_t c2 = p_cpt(p, pos + 2);
        if (fold) c2 = ascii_lower(c2);
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
            return 3;
        }
    }
    return 0;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(piece *p) {
    for (size_t pos = p->a; pos < p->b;) {
        const uint32_t cpt = p_cpt(p, pos);
        const uint16_t flags = p_flags(p, pos);

        size_t n = match_contraction(p, pos, false);
        if (n) {
            pos += p_emit(p, pos + n);
            continue;
        }
        uint16_t f2 = cpt == ' ' ? p_flags(p, pos + 1) : flags;
        if (f2 & UNI_LETTER) { /* ' ?\p{L}+' */
            pos += (cpt == ' ');
            while (f2 & UNI_LETTER)
                f2 = p_flags(p, ++pos);
            p_emit(p, pos);
            continue;
        }
        if (f2 & UNI_NUMBER) { /* ' ?\p{N}+' */
            pos += (cpt == ' ');
            while (f2 & UNI_NUMBER)
                f2 = p_flags(p, ++pos);
            p_emit(p, pos);
            continue;
        }
        if (!is_wln(f2) && f2) { /* ' ?[^\s\p{L}\p{N}]+' */
            pos += (cpt == ' ');
            while (!is_wln(f2) && f2)
                f2 = p_flags(p, ++pos);
            p_emit(p, pos);
            continue;
        }
        size_t nws = 0;
        while (p_flags(p, pos + nws) & UNI_WHITESPACE)
            nws++;
        if (nws > 1 && p_cpt(p, pos + nws) != OUT_OF_RANGE) { /* '\s+(?!\S)': leave one */
            pos += nws - 1;
            p_emit(p, pos);
            continue;
        }
        if (nws > 0) { /* '\s+' */
            pos += nws;
            p_emit(p, pos);
            continue;
        }
        p_emit(p, ++pos); /* nothing matched: one code point on its own */
    }
}

/* Llama 3 (max_digits 3, word = L) and Qwen 2 (max_digits 1, word = L):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+
 * Qwen 3.5 (max_digits 1, word = L|M) reads [\p{L}\p{M}] for \p{L} in the word and symbol
 * parts. */
static void split_llama3(piece *p, size_t max_digits, uint16_t word) {
    for (size_t pos = p->a; pos < p->b;) {
        const uint32_t cpt = p_cpt(p, pos);
        const uint16_t flags = p_flags(p, pos);

        size_t n = match_contraction(p, pos, true);
        if (n) {
            pos += p_emit(p, pos + n);
            continue;
        }
        /* '[^\r\n\p{L}\p{N}]?\p{L}+' */
        if (!(cpt == '\r' || cpt == '\n' || (flags & UNI_NUMBER))) {
            if ((flags & word) || (p_flags(p, pos + 1) & word)) {
                pos++;
                while (p_flags(p, pos) & word)
                    pos++;
                p_emit(p, pos);
                continue;
            }
        }
        if (flags & UNI_NUMBER) { /* '\p{N}{1,max}' repeated: groups from the left */
            size_t ini = pos;
            while (p_flags(p, pos) & UNI_NUMBER) {
                if (++pos - ini >= max_digits) {
                    p_emit(p, pos);
                    ini = pos;
                }
            }
            p_emit(p, pos);
            continue;
        }
        /* ' ?[^\s\p{L}\p{N}]+[\r\n]*'. llama.cpp tests the entry on the flags of the first
         * code point but the loop on those of the following ones; keep both. */
        const uint16_t stop = UNI_WHITESPACE | UNI_NUMBER | word;
        uint16_t f2 = cpt == ' ' ? p_flags(p, pos + 1) : flags;
        if (!(f2 & stop) && flags) {
            pos += (cpt == ' ');
            while (!(f2 & stop) && f2)
                f2 = p_flags(p, ++pos);
            uint32_t c2 = p_cpt(p, pos);
            while (c2 == '\r' || c2 == '\n')
                c2 = p_cpt(p, ++pos);
            p_emit(p, pos);
            continue;
        }
        size_t nws = 0, last_rn_end = 0;
        while (p_flags(p, pos + nws) & UNI_WHITESPACE) {
            uint32_t c2 = p_cpt(p, pos + nws);
            if (c2 == '\r' || c2 == '\n') last_rn_end = pos + nws + 1;
            nws++;
        }
        if (last_rn_end > 0) { /* '\s*[\r\n]+' */
            pos = last_rn_end;
            p_emit(p, pos);
            continue;
        }
        if (nws > 1 && p_cpt(p, pos + nws) != OUT_OF_RANGE) { /* '\s+(?!\S)' */
            pos += nws - 1;
            p_emit(p, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            p_emit(p, pos);
            continue;
        }
        p_emit(p, ++pos);
    }
}

/* ---- character-class regexes (std::regex in llama.cpp) ---- */

static inline bool is_number(uint32_t c) {
    return uni_flags(c) & UNI_NUMBER;
}

/* "[\p{P}\$\+<=>\^~\|]+": punctuation plus the ASCII symbols listed (not '`'). */
static inline bool is_punct_or_listed(uint32_t c) {
    if (c < 128) {
        switch (c) {
        case '$':
        case '+':
        case '<':
        case '=':
        case '>':
        case '^':
        case '~':
        case '|':
            return true;
        default:
            break;
        }
    }
    return uni_flags(c) & UNI_PUNCT;
}

/* Falcon's "[\p{P}\$\+<=>\^~\|`]+": the same with the backtick. */
static inline bool is_punct_or_listed_bt(uint32_t c) {
    return c == '`' || is_punct_or_listed(c);
}

/* Maximal runs of pred become words ("X+"). */
static void split_runs(piece *p, bool (*pred)(uint32_t)) {
    size_t i = p->a;
    while (i < p->b) {
        if (!pred(p->cpts[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < p->b && pred(p->cpts[j]))
            j++;
        p->bnd[i] = 1;
        p->bnd[j] = 1;
        i = j;
    }
}

/* Each code point matching pred is a word on its own ("X"). */
static void split_each(piece *p, bool (*pred)(uint32_t)) {
    for (size_t i = p->a; i < p->b; i++) {
        if (pred(p->cpts[i])) {
            p->bnd[i] = 1;
            p->bnd[i + 1] = 1;
        }
    }
}

/* "[0-9][0-9][0-9]", leftmost matches without overlap. */
static void split_ascii_digit_triples(piece *p) {
    size_t i = p->a;
    while (i + 3 <= p->b) {
        const uint32_t *c = p->cpts + i;
        if (c[0] - '0' < 10 && c[1] - '0' < 10 && c[2] - '0' < 10) {
            p->bnd[i] = 1;
            p->bnd[i + 3] = 1;
            i += 3;
        } else {
            i++;
        }
    }
}

enum pass {
    PASS_GPT2,
    PASS_LLAMA3,
    PASS_QWEN2,
    PASS_QWEN35,
    PASS_PUNCT_RUNS,
    PASS_PUNCT_BT_RUNS,
    PASS_NUMBER_RUNS,
    PASS_NUMBER_EACH,
    PASS_DIGIT_TRIPLES,
    PASS_END,
};

/* The regex lists of llama-vocab.cpp, in order. */
static const enum pass *passes_of(tok_pre pre) {
    static const enum pass def[] = {PASS_PUNCT_RUNS, PASS_GPT2, PASS_NUMBER_RUNS,
                                    PASS_DIGIT_TRIPLES, PASS_END};
    static const enum pass gpt2[] = {PASS_GPT2, PASS_END};
    static const enum pass falcon[] = {PASS_PUNCT_BT_RUNS, PASS_GPT2, PASS_DIGIT_TRIPLES, PASS_END};
    static const enum pass llama3[] = {PASS_LLAMA3, PASS_END};
    static const enum pass qwen2[] = {PASS_QWEN2, PASS_END};
    static const enum pass qwen35[] = {PASS_QWEN35, PASS_END};
    static const enum pass smollm[] = {PASS_NUMBER_EACH, PASS_GPT2, PASS_END};
    switch (pre) {
    case TOK_PRE_GPT2:
        return gpt2;
    case TOK_PRE_LLAMA3:
        return llama3;
    case TOK_PRE_QWEN2:
        return qwen2;
    case TOK_PRE_QWEN35:
        return qwen35;
    case TOK_PRE_SMOLLM:
        return smollm;
    case TOK_PRE_FALCON:
        return falcon;
    case TOK_PRE_DEFAULT:
        break;
    }
    return def;
}

static void run_pass(enum pass pass, piece *p) {
    switch (pass) {
    case PASS_GPT2:
        split_gpt2(p);
        break;
    case PASS_LLAMA3:
        split_llama3(p, 3, UNI_LETTER);
        break;
    case PASS_QWEN2:
        split_llama3(p, 1, UNI_LETTER);
        break;
    case PASS_QWEN35:
        split_llama3(p, 1, UNI_LETTER | UNI_MARK);
        break;
    case PASS_PUNCT_RUNS:
        split_runs(p, is_punct_or_listed);
        break;
    case PASS_PUNCT_BT_RUNS:
        split_runs(p, is_punct_or_listed_bt);
        break;
    case PASS_NUMBER_RUNS:
        split_runs(p, is_number);
        break;
    case PASS_NUMBER_EACH:
        split_each(p, is_number);
        break;
    case PASS_DIGIT_TRIPLES:
        split_ascii_digit_triples(p);
        break;
    case PASS_END:
        break;
    }
}

void tok_pretokenize(tok_pre pre, const uint32_t *cpts, size_t n, uint8_t *bnd) {
    bnd[0] = 1;
    bnd[n] = 1;
    for (const enum pass *pass = passes_of(pre); *pass != PASS_END; pass++) {
        /* Each current piece is split on its own; new marks fall strictly inside the piece,
         * so finding the piece's end before running the pass is enough. */
        size_t a = 0;
        while (a < n) {
            size_t b = a + 1;
            while (!bnd[b])
                b++;
            piece p = {cpts, a, b, bnd, a};
            run_pass(*pass, &p);
            a = b;
        }
    }
}
