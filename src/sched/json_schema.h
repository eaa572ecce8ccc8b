/* Structured output: a JSON Schema subset compiled into a byte-level pushdown automaton, and
 * the token mask it gives a sampler (json_mask.c).
 *
 * jsc_compile turns a schema's text into a small node graph (json_schema.c); a jsc_state is a
 * stack of frames walking that graph one byte at a time (json_fsm.c). Every prefix the
 * automaton accepts can be completed to a document the schema accepts, so a sampler that
 * only picks tokens whose bytes the automaton accepts never gets stuck.
 *
 * The subset (docs/serve.md, "Structured output", says the same for users):
 *  - type: object, array, string, number, integer, boolean, null, or a list of those;
 *  - object: properties (generated in the schema's order; those not in required may be left
 *    out), required; additionalProperties is accepted but extra keys are never generated;
 *    an object without properties is any object (values by additionalProperties, if it is a
 *    schema), with additionalProperties false only {};
 *  - array: items, minItems, maxItems; string: minLength, maxLength (code points);
 *  - enum, const (any JSON values, generated in their compact form); anyOf whose branches
 *    start with different bytes (e.g. a type and null);
 *  - true or {}: any JSON value. {"type": "object"} is any JSON object (json_object mode);
 *  - annotations (title, description, default, examples, $schema, $id, $comment, $defs,
 *    definitions, deprecated, readOnly, writeOnly) are ignored; any other keyword is an
 *    error naming it and where it is ($ref, minimum, pattern, format, oneOf, ...).
 * Whitespace: none before or after the document, at most JSC_MAX_WS bytes in each gap
 * between tokens of an object or array, none inside numbers and literals. Numbers: at most
 * 15 digits before and after the point and 2 in the exponent. Containers nest at most
 * JSC_MAX_DEPTH deep. None of this allocates after jsc_compile. */
#ifndef VKLLM_SCHED_JSON_SCHEMA_H
#define VKLLM_SCHED_JSON_SCHEMA_H

#include "core/common.h"

#define JSC_MAX_DEPTH 32
#define JSC_MAX_WS 20

typedef struct jsc_schema jsc_schema;

/* One open value: a node of the schema and where in it the bytes are. */
typedef struct jsc_frame {
    uint32_t node;
    uint8_t ph; /* phase within the node; 0: nothing read yet */
    uint8_t ws; /* whitespace bytes in the current gap */
    uint16_t x; /* small counter: hex digits, UTF-8 continuation bytes, number digits */
    uint32_t a, b, c;
} jsc_frame;

typedef struct jsc_state {
    uint32_t depth; /* open frames; 0: the document is complete */
    jsc_frame f[JSC_MAX_DEPTH];
} jsc_state;

/* text (len bytes, not NUL-terminated necessarily): a JSON Schema. Errors
 * (VKLLM_ERR_INVALID_ARG) say what and where, e.g. "unsupported keyword '$ref' at
 * /properties/a". */
vkllm_status jsc_compile(const vkllm_allocator *a, const char *text, size_t len, jsc_schema **out,
                         core_err *err);
void jsc_free(jsc_schema *sc);

void jsc_init(const jsc_schema *sc, jsc_state *st);
/* Feeds one byte; false (and st unusable: copy it first) when the schema rejects it. */
bool jsc_feed(const jsc_schema *sc, jsc_state *st, uint8_t c);
bool jsc_feed_bytes(const jsc_schema *sc, jsc_state *st, const void *p, size_t n);
/* The bytes so far are a whole document (end of generation may come now). */
bool jsc_can_end(const jsc_schema *sc, const jsc_state *st);
/* Nothing may follow: the document is closed. */
/* f is in a string's body where room more code points fit (json_mask.c's shortcut). */
bool jsc_in_string_body(const jsc_schema *sc, const jsc_frame *f, uint32_t *room);
static inline bool jsc_done(const jsc_state *st) {
    return st->depth == 0;
}
static inline void jsc_copy(jsc_state *dst, const jsc_state *src) {
    dst->depth = src->depth;
    for (uint32_t i = 0; i < src->depth; i++)
        dst->f[i] = src->f[i];
}

/* ---- the token mask (json_mask.c) ---- */

struct tok_vocab;
/* Every token's bytes, sorted, with the prefix each shares with the one before: one walk over
 * it visits each distinct prefix once and skips every token behind a rejected prefix. Built
 * once per model (immutable, shared by threads). */
typedef struct jsc_vocab jsc_vocab;
vkllm_status jsc_vocab_build(const vkllm_allocator *a, const struct tok_vocab *v, jsc_vocab **out);
void jsc_vocab_free(jsc_vocab *v);

/* One generation's constraint: the schema (owned), the automaton's state and scratch. */
typedef struct jsc_run jsc_run;
vkllm_status jsc_run_create(const vkllm_allocator *a, const jsc_vocab *v, jsc_schema *sc,
                            jsc_run **out);
void jsc_run_free(jsc_run *r);
/* Tokens the schema allows next: allow[id] = 1 (n_vocab bytes), the rest 0. The
 * end-of-generation ids are allowed when the document can end. Returns how many. */
uint32_t jsc_run_mask(jsc_run *r, uint8_t *allow);
/* Whether one token is allowed next (what jsc_run_mask would say for it). */
bool jsc_run_allows(const jsc_run *r, int32_t tok);
/* The token was generated: the automaton moves past its bytes (EOG ids: nothing). */
void jsc_run_accept(jsc_run *r, int32_t tok);
bool jsc_run_done(const jsc_run *r);
uint8_t *jsc_run_allow_buf(jsc_run *r); /* n_vocab bytes of scratch for the sampler */

#endif
