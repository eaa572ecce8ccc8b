/* Structured output for the API: a request's json_schema compiled into a constraint run over
 * the model's token table (src/sched/json_schema.h). The table is made once per model, the
 * first time a request needs it. */
#include "api_internal.h"
#include "sched/json_schema.h"

#include <string.h>

vkllm_status api_json_run(vkllm_model *m, const char *schema, jsc_run **out, core_err *err) {
    *out = NULL;
    const vkllm_allocator *a = m->rt->alloc;
    jsc_schema *sc = NULL;
    vkllm_status st = jsc_compile(a, schema, strlen(schema), &sc, err);
    if (st != VKLLM_OK) return st;
    pthread_mutex_lock(&m->mu);
    if (!m->json_vocab) st = jsc_vocab_build(a, m->vocab, &m->json_vocab);
    const jsc_vocab *v = m->json_vocab;
    pthread_mutex_unlock(&m->mu);
    if (st != VKLLM_OK) {
        jsc_free(sc);
        return core_errf(err, st, "json schema: out of memory for the token table");
    }
    st = jsc_run_create(a, v, sc, out); /* takes sc, also when it fails */
    if (st != VKLLM_OK) return core_errf(err, st, "json schema: out of memory");
    return VKLLM_OK;
}
