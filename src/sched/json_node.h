/* The compiled form of a schema, shared by the compiler (json_schema.c) and the automaton
 * (json_fsm.c): nodes referring to each other by index, literals in one byte pool. Nothing
 * else includes this. */
#ifndef VKLLM_SCHED_JSON_NODE_H
#define VKLLM_SCHED_JSON_NODE_H

#include "sched/json_schema.h"

typedef enum jsc_kind {
    JN_UNION,   /* kids[a .. a + b): the one whose first bytes hold the value's first byte */
    JN_OBJECT,  /* props[a .. a + b), in order */
    JN_MAP,     /* any keys, values by node child */
    JN_ARRAY,   /* items by node child, min..max of them */
    JN_STRING,  /* min..max code points */
    JN_NUMBER,  /* JSON's number grammar */
    JN_INTEGER, /* -? (0 | [1-9][0-9]*) */
    JN_ENUM,    /* one of lits[a .. a + b), sorted bytewise */
} jsc_kind;

typedef struct jsc_node {
    uint8_t kind;
    uint32_t a, b;
    uint32_t child;
    uint32_t min, max;
    uint8_t first[32]; /* bytes a value of this node may start with (a bit set) */
} jsc_node;

typedef struct jsc_prop {
    uint32_t key, key_len; /* in pool: the key as it is written between the quotes */
    uint32_t node;
    bool required;
} jsc_prop;

typedef struct jsc_lit {
    uint32_t off, len; /* in pool */
} jsc_lit;

struct jsc_schema {
    const vkllm_allocator *alloc;
    jsc_node *nodes;
    uint32_t n_nodes, root, str_node; /* str_node: any string (keys of a JN_MAP) */
    jsc_prop *props;
    uint32_t n_props;
    uint32_t *kids;
    uint32_t n_kids;
    jsc_lit *lits;
    uint32_t n_lits;
    char *pool;
    uint32_t n_pool;
};

static inline bool jsc_first_has(const jsc_node *n, uint8_t c) {
    return (n->first[c >> 3] >> (c & 7)) & 1;
}

#endif
