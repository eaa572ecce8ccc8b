/* Unicode helpers for the tokenizer: code point flags, lenient UTF-8, GPT-2 byte mapping.
 *
 * The flags come from generated range tables (loader/unicode_data.c, made by
 * tools/gen_unicode_tables.py) that agree with llama.cpp's own tables, because the categories
 * decide where the pre-tokenizers split text and so which ids come out. The UTF-8 decoder is
 * deliberately as lenient as llama.cpp's (it accepts overlong forms and surrogates) so invalid
 * input splits the same way. No allocation, no state.
 */
#ifndef VKLLM_LOADER_UNICODE_H
#define VKLLM_LOADER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* One category bit per code point, plus White_Space. Same meaning as llama.cpp's
 * unicode_cpt_flags: UNI_UNDEF is an unassigned code point (Cn), which is still "a character"
 * for the matchers; only positions outside the text have no flags at all (0). */
enum {
    UNI_UNDEF = 0x01,
    UNI_NUMBER = 0x02,    /* \p{N} */
    UNI_LETTER = 0x04,    /* \p{L} */
    UNI_SEPARATOR = 0x08, /* \p{Z} */
    UNI_MARK = 0x10,      /* \p{M} */
    UNI_PUNCT = 0x20,     /* \p{P} */
    UNI_SYMBOL = 0x40,    /* \p{S} */
    UNI_CONTROL = 0x80,   /* \p{C} */
    UNI_CATEGORY_MASK = 0xFF,
    UNI_WHITESPACE = 0x100, /* \s: the White_Space property */
};

#define UNI_MAX_CPT 0x110000u
#define UNI_REPLACEMENT 0xFFFDu

/* Generated tables (loader/unicode_data.c). */
extern const size_t uni_range_count;
extern const uint32_t uni_range_start[];
extern const uint16_t uni_range_flags[];
extern const uint16_t uni_flags_latin1[256];

/* Flags of a code point; code points past U+10FFFF are UNI_UNDEF. */
uint16_t uni_flags(uint32_t cpt);

/* Length of a UTF-8 sequence from its first byte, without validation (continuation bytes
 * count 1): the way SentencePiece and BPE split symbols. */
static inline size_t uni_utf8_len(uint8_t lead) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

/* Decodes one code point at s (len > 0) and sets *adv to the bytes used. A byte that does not
 * start a complete sequence gives U+FFFD and *adv = 1. Overlong forms and surrogates decode
 * as llama.cpp does (to their value); sequences past U+10FFFF, on which llama.cpp aborts, are
 * treated as invalid. */
uint32_t uni_decode(const uint8_t *s, size_t len, size_t *adv);

/* UTF-8 of cpt (<= U+10FFFF) into out; returns the length (1..4). */
size_t uni_encode(uint32_t cpt, uint8_t out[4]);

/* GPT-2's byte-level mapping: each byte is shown as a printable code point (bytes_to_unicode
 * in OpenAI's encoder.py). uni_cpt_to_byte returns -1 for a code point that is no byte. */
uint32_t uni_byte_to_cpt(uint8_t b);
int uni_cpt_to_byte(uint32_t cpt);

#endif
