/* Sampling. Candidates far below the best logit (probability under e^-40 of the best after
 * temperature) are dropped before sorting, which makes top-k/top-p cheap on a 50k-128k vocab
 * without changing any probability that matters. No allocation per token. */
#include "sched/sampler.h"
#include "sched/json_schema.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct sched_sampler {
    const vkllm_allocator *alloc;
    uint32_t n_vocab;
    vkllm_sampling p;
    uint64_t rng;
    cand *c;
    int32_t *hist; /* ring of the last repeat_last_n tokens */
    uint32_t hist_cap, hist_n, hist_head;
    uint8_t *seen;      /* per-vocab flag while applying the penalty */
    const int32_t *ban; /* never sampled (ascending), n_ban of them */
    uint32_t n_ban;
    bool ban_selected; /* the candidates come without them (sched_sampler_set_banned) */
    /* presence and frequency penalties (sched_sampler_set_penalties); count: per-vocabulary
     * generated-token counts, allocated when a penalty is first set */
    float presence, frequency;
    uint32_t *count;
    jsc_run *json; /* structured output: the allowed tokens (sched_sampler_set_json) */
};

/* splitmix64 (Steele et al. 2014): small, fast, and good enough for sampling */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double next_unit(uint64_t *s) {
    return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
}

static int cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

vkllm_status sched_sampler_create(const vkllm_allocator *a, uint32_t n_vocab,
                                  const vkllm_sampling *params, sched_sampler **out) {
    sched_sampler *s = core_calloc(a, 1, sizeof *s);
    if (!s) return VKLLM_ERR_OUT_OF_MEMORY;
    s->alloc = a;
    s->n_vocab = n_vocab;
    s->c = core_calloc(a, n_vocab, sizeof *s->c);
    s->seen = core_calloc(a, n_vocab, 1);
    s->hist_cap = 4096;
    s->hist = core_calloc(a, s->hist_cap, sizeof *s->hist);
    if (!s->c || !s->seen || !s->hist) {
        sched_sampler_free(s);
        return VKLLM_ERR_OUT_OF_MEMORY;
    }
    sched_sampler_reset(s, params);
    *out = s;
    return VKLLM_OK;
}

void sched_sampler_free(sched_sampler *s) {
    if (!s) return;
    core_free(s->alloc, s->c);
    core_free(s->alloc, s->seen);
    core_free(s->alloc, s->hist);
    core_free(s->alloc, s->count);
    core_free(s->alloc, s);
}

void sched_sampler_reset(sched_sampler *s, const vkllm_sampling *params) {
    vkllm_sampling zero = {0};
    s->p = params ? *params : zero;
    if (s->p.repeat_last_n <= 0) s->p.repeat_last_n = 64;
    if ((uint32_t)s->p.repeat_last_n > s->hist_cap) s->p.repeat_last_n = (int32_t)s->hist_cap;
    s->rng = s->p.seed;
    s->hist_n = s->hist_head = 0;
    if (s->count) memset(s->count, 0, (size_t)s->n_vocab * sizeof *s->count);
}

void sched_sampler_set_banned(sched_sampler *s, const int32_t *ids, uint32_t n,
                              bool selected_without) {
    s->ban = n ? ids : NULL;
    s->n_ban = ids ? n : 0;
    s->ban_selected = selected_without;
}

static bool is_banned(const sched_sampler *s, int32_t id) {
    uint32_t lo = 0, hi = s->n_ban; /* binary search: the list is ascending */
    while (lo < hi) {
        const uint32_t mid = (lo + hi) / 2;
        if (s->ban[mid] == id) return true;
        if (s->ban[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

void sched_sampler_accept(sched_sampler *s, int32_t token) {
    s->hist[s->hist_head] = token;
    s->hist_head = (s->hist_head + 1) % s->hist_cap;
    if (s->hist_n < s->hist_cap) s->hist_n++;
}

static bool has_penalty(const vkllm_sampling *p) {
    return p->repeat_penalty > 0.0f && p->repeat_penalty != 1.0f;
}

static bool has_oai_penalty(const sched_sampler *s) {
    return s->count && (s->presence != 0.0f || s->frequency != 0.0f);
}

uint32_t sched_sampler_top_needed(const sched_sampler *s, uint32_t k_max) {
    const vkllm_sampling *p = &s->p;
    if (s->json) return 0; /* the mask can leave out any of the best */
    /* a penalty can reorder anything: all logits */
    if (has_penalty(p) || has_oai_penalty(s)) return 0;
    uint32_t k = 0;
    if (!(p->temperature > 0.0f))
        k = 1;
    else if (p->top_k > 0 && (uint32_t)p->top_k < s->n_vocab)
        k = (uint32_t)p->top_k;
    /* the best k that are not banned are among the best k + n_ban, unless the selection leaves
     * them out itself */
    const uint32_t extra = s->ban_selected ? 0 : s->n_ban;
    if (k == 0 || (uint64_t)k + extra > k_max || (uint64_t)k + extra >= s->n_vocab) return 0;
    return k + extra;
}

static int32_t sample_cands(sched_sampler *s, cand *c, uint32_t nv, bool full_vocab);

int32_t sched_sampler_sample_top(sched_sampler *s, const int32_t *ids, const float *vals,
                                 uint32_t n) {
    if (n == 0) return 0;
    if (s->n_ban) { /* drop the banned candidates; the best of the rest stays first */
        uint32_t m = 0;
        for (uint32_t i = 0; i < n; i++)
            if (!is_banned(s, ids[i])) s->c[m++] = (cand){vals ? vals[i] : 0.0f, ids[i]};
        if (m == 0) return ids[0]; /* only when the caller gave too few candidates */
        if (!(s->p.temperature > 0.0f) || !vals) return s->c[0].id;
        return sample_cands(s, s->c, m, false);
    }
    if (!(s->p.temperature > 0.0f) || !vals) return ids[0]; /* greedy: the best is first */
    for (uint32_t i = 0; i < n; i++)
        s->c[i] = (cand){vals[i], ids[i]};
    return sample_cands(s, s->c, n, false);
}

/* ---- structured output ---- */

void sched_sampler_set_json(sched_sampler *s, jsc_run *run) {
    s->json = run;
}

static int32_t sample_json(sched_sampler *s, cand *c, uint32_t nv) {
    if (!(s->p.temperature > 0.0f) && !has_penalty(&s->p)) { /* the argmax, if allowed */
        uint32_t best = 0;
        for (uint32_t i = 1; i < nv; i++)
            if (c[i].logit > c[best].logit) best = i;
        if (jsc_run_allows(s->json, (int32_t)best)) return (int32_t)best;
    }
    uint8_t *allow = jsc_run_allow_buf(s->json);
    if (jsc_run_mask(s->json, allow) == 0) return -1; /* nothing can follow (sched.h) */
    bool any = false;
    for (uint32_t i = 0; i < nv; i++)
        if (!allow[i])
            c[i].logit = -INFINITY;
        else if (c[i].logit > -INFINITY)
            any = true;
    /* every allowed token banned (only EOG may follow, with ignore_eog): nothing to sample */
    if (!any) return -1;
    const int32_t t = sample_cands(s, c, nv, true);
    return allow[t] ? t : -1;
}

int32_t sched_sampler_sample(sched_sampler *s, const float *logits) {
    const uint32_t nv = s->n_vocab;
    cand *c = s->c;
    for (uint32_t i = 0; i < nv; i++)
        c[i] = (cand){logits[i], (int32_t)i};
    for (uint32_t i = 0; i < s->n_ban; i++)
        if (s->ban[i] >= 0 && (uint32_t)s->ban[i] < nv) c[s->ban[i]].logit = -INFINITY;
    if (s->json) return sample_json(s, c, nv);
    return sample_cands(s, c, nv, true);
}

static void apply_oai_penalties(const sched_sampler *s, cand *c, uint32_t nv);

/* c[0..nv): every logit (full_vocab, c[i].id == i) or the best candidates. */
static int32_t sample_cands(sched_sampler *s, cand *c, uint32_t nv, bool full_vocab) {
    const vkllm_sampling *p = &s->p;
    /* repetition penalty (Keskar et al. 2019, CTRL): each recent token once */
    if (full_vocab && has_penalty(p)) {
        uint32_t n =
            s->hist_n < (uint32_t)p->repeat_last_n ? s->hist_n : (uint32_t)p->repeat_last_n;
        for (int pass = 0; pass < 2; pass++)
            for (uint32_t k = 0; k < n; k++) {
                int32_t id = s->hist[(s->hist_head + s->hist_cap - 1 - k) % s->hist_cap];
                if (id < 0 || (uint32_t)id >= nv) continue;
                if (pass == 0 && !s->seen[id]) {
                    s->seen[id] = 1;
                    float *l = &c[id].logit;
                    *l = *l > 0 ? *l / p->repeat_penalty : *l * p->repeat_penalty;
                } else if (pass == 1) {
                    s->seen[id] = 0;
                }
            }
    }
    if (full_vocab && has_oai_penalty(s)) apply_oai_penalties(s, c, nv);

    uint32_t best = 0;
    for (uint32_t i = 1; i < nv; i++)
        if (c[i].logit > c[best].logit) best = i;
    const int32_t best_id = c[best].id;
    if (!(p->temperature > 0.0f)) return best_id;

    /* drop candidates that cannot matter, keep the top k (a bounded min-heap, O(n log k)),
     * then sort what is left */
    const float mx = c[best].logit;
    const float floor_l = mx - 40.0f * (p->temperature > 1.0f ? p->temperature : 1.0f);
    uint32_t n = 0;
    const uint32_t k = p->top_k > 0 && (uint32_t)p->top_k < nv ? (uint32_t)p->top_k : nv;
    for (uint32_t i = 0; i < nv; i++) {
        const cand x = c[i];
        if (!(x.logit >= floor_l) || !isfinite(x.logit)) continue;
        if (n < k) { /* sift up: c[0..n) is a min-heap by cand_desc order */
            uint32_t j = n++;
            while (j > 0 && cand_desc(&x, &c[(j - 1) / 2]) > 0) { /* x is worse */
                c[j] = c[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            c[j] = x;
        } else if (cand_desc(&x, &c[0]) < 0) { /* better than the worst kept: sift down */
            uint32_t j = 0;
            for (;;) {
                uint32_t l = 2 * j + 1, r = l + 1, m = j;
                const cand *cm = &x;
                if (l < n && cand_desc(&c[l], cm) > 0) m = l, cm = &c[l];
                if (r < n && cand_desc(&c[r], cm) > 0) m = r, cm = &c[r];
                if (m == j) break;
                c[j] = c[m];
                j = m;
            }
            c[j] = x;
        }
    }
    if (n == 0) return best_id;
    qsort(c, n, sizeof *c, cand_desc);
    if (p->top_p > 0.0f && p->top_p < 1.0f) { /* nucleus (Holtzman et al. 2019), at T = 1 */
        double z = 0.0;
        for (uint32_t i = 0; i < n; i++)
            z += exp((double)(c[i].logit - mx));
        double cum = 0.0;
        for (uint32_t i = 0; i < n; i++) {
            cum += exp((double)(c[i].logit - mx)) / z;
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f && p->min_p < 1.0f) { /* keep p >= min_p * p_max, at T = 1 */
        const float lim = mx + logf(p->min_p);
        uint32_t keep = 1;
        while (keep < n && c[keep].logit >= lim)
            keep++;
        n = keep;
    }
    double z = 0.0;
    for (uint32_t i = 0; i < n; i++)
        z += exp((double)((c[i].logit - mx) / p->temperature));
    double r = next_unit(&s->rng) * z, cum = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        cum += exp((double)((c[i].logit - mx) / p->temperature));
        if (r < cum) return c[i].id;
    }
    return c[n - 1].id;
}

/* ---- OpenAI's presence and frequency penalties ---- */

vkllm_status sched_sampler_set_penalties(sched_sampler *s, float presence, float frequency) {
    s->presence = s->frequency = 0.0f;
    if (presence == 0.0f && frequency == 0.0f) return VKLLM_OK;
    if (!s->count) {
        s->count = core_calloc(s->alloc, s->n_vocab, sizeof *s->count);
        if (!s->count) return VKLLM_ERR_OUT_OF_MEMORY;
    }
    s->presence = presence;
    s->frequency = frequency;
    return VKLLM_OK;
}

void sched_sampler_accept_output(sched_sampler *s, int32_t token) {
    sched_sampler_accept(s, token);
    if (s->count && token >= 0 && (uint32_t)token < s->n_vocab && s->count[token] < UINT32_MAX)
        s->count[token]++;
}

vkllm_status sched_sampler_check_openai(float presence, float frequency, uint32_t top_logprobs,
                                        const char *who, core_err *err) {
    if (!(presence >= -2.0f && presence <= 2.0f) || !(frequency >= -2.0f && frequency <= 2.0f))
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "%s: presence_penalty %g and frequency_penalty %g must be in [-2, 2]", who,
                         (double)presence, (double)frequency);
    if (top_logprobs > VKLLM_TOP_LOGPROBS_MAX)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "%s: top_logprobs %u is over %u", who,
                         top_logprobs, VKLLM_TOP_LOGPROBS_MAX);
    return VKLLM_OK;
}

/* c: every logit, c[i].id == i. One pass over the counts: the penalties already read every
 * logit back, so a pass over the vocabulary is the cost of the step's sampling anyway. */
static void apply_oai_penalties(const sched_sampler *s, cand *c, uint32_t nv) {
    for (uint32_t i = 0; i < nv; i++)
        if (s->count[i]) c[i].logit -= s->frequency * (float)s->count[i] + s->presence;
}
