/* LoRA adapters behind the public API (vkllm.h): loading, reference counts, and letting the
 * backend copy go once nothing uses an adapter.
 *
 * An adapter is used by the user's handle and by every session and request that names it
 * (each holds a reference). The last reference can be dropped where the backend lock must not
 * be taken (a request freed by the engine thread under the engine's lock), so dropping it
 * only moves the adapter to the model's dead list; api_lora_collect, called where no lock is
 * held, detaches it from the backend (which waits for steps in flight that read it) and
 * frees it. */
#include "api_abi.h"
#include "api_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static atomic_uint_fast64_t g_serial = 1;

static void model_err(vkllm_model *m, const core_err *err) {
    pthread_mutex_lock(&m->mu);
    m->err = *err;
    pthread_mutex_unlock(&m->mu);
}

static void adapter_destroy(vkllm_adapter *ad) {
    vkllm_runtime *rt = ad->model->rt;
    if (ad->attached && ad->model->be->vt->lora_detach) {
        pthread_mutex_lock(&rt->be_mu);
        ad->model->be->vt->lora_detach(ad->model->be, &ad->l);
        pthread_mutex_unlock(&rt->be_mu);
    }
    eng_lora_free(&ad->l);
    core_free(rt->alloc, ad);
}

vkllm_status vkllm_adapter_load(vkllm_model *m, const vkllm_adapter_desc *user_desc,
                                vkllm_adapter **out) {
    if (!m || !user_desc || !out) return VKLLM_ERR_INVALID_ARG;
    *out = NULL;
    vkllm_adapter_desc local;
    const vkllm_adapter_desc *d = API_IN(vkllm_adapter_desc, user_desc, &local);
    core_err err = {{0}};
    vkllm_status st = VKLLM_OK;
    if (!d->path)
        st = core_errf(&err, VKLLM_ERR_INVALID_ARG, "adapter: no path");
    else if (m->vocab_only)
        st = core_errf(&err, VKLLM_ERR_INVALID_ARG,
                       "adapter: the model was loaded vocab-only: it has no weights to adapt");
    else if (!m->be->loras)
        st = core_errf(&err, VKLLM_ERR_UNSUPPORTED,
                       "adapter: LoRA adapters do not run on %s yet (use --device cpu)",
                       m->be->name);
    if (st != VKLLM_OK) {
        model_err(m, &err);
        return st;
    }
    vkllm_runtime *rt = m->rt;
    vkllm_adapter *ad = core_calloc(rt->alloc, 1, sizeof *ad);
    if (!ad) {
        core_errf(&err, VKLLM_ERR_OUT_OF_MEMORY, "adapter: out of memory");
        model_err(m, &err);
        return VKLLM_ERR_OUT_OF_MEMORY;
    }
    st = eng_lora_load(&ad->l, d->path, &m->em, rt->alloc, &err);
    if (st == VKLLM_OK && m->be->vt->lora_attach) {
        pthread_mutex_lock(&rt->be_mu);
        st = m->be->vt->lora_attach(m->be, &ad->l, &err);
        pthread_mutex_unlock(&rt->be_mu);
        ad->attached = st == VKLLM_OK;
    }
    if (st != VKLLM_OK) {
        char msg[CORE_ERR_LEN];
        snprintf(msg, sizeof msg, "%s", err.msg);
        core_errf(&err, st, "%s: %s", d->path, msg);
        eng_lora_free(&ad->l);
        core_free(rt->alloc, ad);
        model_err(m, &err);
        return st;
    }
    if (d->name && d->name[0]) snprintf(ad->l.name, sizeof ad->l.name, "%s", d->name);
    ad->model = m;
    ad->serial = atomic_fetch_add(&g_serial, 1);
    atomic_init(&ad->refs, 1);
    pthread_mutex_lock(&m->lora_mu);
    ad->next = m->lora_live;
    if (m->lora_live) m->lora_live->prev = ad;
    m->lora_live = ad;
    pthread_mutex_unlock(&m->lora_mu);
    rt_log(rt, VKLLM_LOG_INFO, "adapter '%s': %u tensors, rank %u, alpha %g, %.2f MiB", ad->l.name,
           ad->l.n_pairs, ad->l.max_rank, (double)ad->l.alpha,
           (double)ad->l.bytes / (1024.0 * 1024.0));
    *out = ad;
    return VKLLM_OK;
}

void api_lora_release(const eng_lora *l) {
    vkllm_adapter *ad = api_adapter_of(l);
    if (atomic_fetch_sub(&ad->refs, 1) != 1) return;
    vkllm_model *m = ad->model;
    pthread_mutex_lock(&m->lora_mu);
    if (ad->prev)
        ad->prev->next = ad->next;
    else
        m->lora_live = ad->next;
    if (ad->next) ad->next->prev = ad->prev;
    ad->prev = NULL;
    ad->next = m->lora_dead;
    m->lora_dead = ad;
    pthread_mutex_unlock(&m->lora_mu);
}

/* Takes the list at *head (under the model's lora_mu) and destroys its adapters. */
static void destroy_list(vkllm_model *m, vkllm_adapter **head) {
    pthread_mutex_lock(&m->lora_mu);
    vkllm_adapter *l = *head;
    *head = NULL;
    pthread_mutex_unlock(&m->lora_mu);
    for (vkllm_adapter *nx; l; l = nx) {
        nx = l->next;
        adapter_destroy(l);
    }
}

void api_lora_collect(vkllm_model *m) {
    destroy_list(m, &m->lora_dead);
}

void api_lora_free_all(vkllm_model *m) {
    destroy_list(m, &m->lora_dead);
    destroy_list(m, &m->lora_live);
}

void vkllm_adapter_free(vkllm_adapter *ad) {
    if (!ad) return;
    vkllm_model *m = ad->model;
    api_lora_release(&ad->l);
    api_lora_collect(m);
}

const char *vkllm_adapter_name(const vkllm_adapter *ad) {
    return ad ? ad->l.name : "";
}

uint32_t vkllm_adapter_rank(const vkllm_adapter *ad) {
    return ad ? ad->l.max_rank : 0;
}

uint32_t vkllm_adapter_n_tensors(const vkllm_adapter *ad) {
    return ad ? ad->l.n_pairs : 0;
}

vkllm_status api_lora_take(vkllm_model *m, const vkllm_lora *lora, size_t n, eng_lora_use *use,
                           uint64_t *ids, core_err *err) {
    if (n && !lora) return core_errf(err, VKLLM_ERR_INVALID_ARG, "lora: %zu adapters, no list", n);
    if (n > VKLLM_MAX_LORA)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "lora: %zu adapters (at most %d at once)", n,
                         VKLLM_MAX_LORA);
    for (size_t j = 0; j < n; j++) {
        if (!lora[j].adapter)
            return core_errf(err, VKLLM_ERR_INVALID_ARG, "lora: adapter %zu is NULL", j);
        if (lora[j].adapter->model != m)
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "lora: adapter '%s' was loaded for another model",
                             lora[j].adapter->l.name);
        if (!isfinite(lora[j].scale))
            return core_errf(err, VKLLM_ERR_INVALID_ARG, "lora: adapter '%s' has scale %g",
                             lora[j].adapter->l.name, (double)lora[j].scale);
    }
    for (size_t j = 0; j < n; j++) {
        atomic_fetch_add(&lora[j].adapter->refs, 1);
        use[j] = (eng_lora_use){.lora = &lora[j].adapter->l, .scale = lora[j].scale};
        ids[j] = lora[j].adapter->serial;
    }
    return VKLLM_OK;
}
