/* Thread safety (vkllm.h, "Threads"): one engine used from several threads at once (submit,
 * wait, cancel, free), on_token callbacks that call back into their own engine (submit, free
 * others and themselves, stats, vkllm_generate on the same runtime) while another thread reads
 * the stats, vkllm_generate's on_token calling into an engine of its runtime, a manual engine
 * stepped on one thread while others submit, and two runtimes used from two threads at once.
 * Every request that completes must hold the tokens the same request gets alone (greedy, or
 * sampled with a seed); a cancelled one a prefix of them. Each part runs under a watchdog
 * that fails the test instead of hanging on a deadlock. Under ThreadSanitizer
 * (scripts/test.sh, build-tsan) this is the race check.
 *
 * VKLLM_TEST_DEVICE=vulkan: the same on lavapipe (shorter), and the two runtimes are a
 * lavapipe one with a CPU one, then two lavapipe ones (two VkDevices). */
#include "api_test_util.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define N_SPEC 6
#define MAX_TOK 32
#define MAX_KIDS 24
#define WATCHDOG_S 420 /* far above a part's time even under TSan: reaching it is a hang */

static const char *k_prompts[N_SPEC] = {
    "The capital of France is",    "List three colours:", "1, 2, 3, 4, 5,",
    "Q: Why is the sky blue?\nA:", "def add(a, b):",      "Once upon a time",
};

typedef struct ref {
    int32_t ids[MAX_TOK];
    size_t n;
} ref;

static const char *g_device = "cpu";
static int g_ntok = 16, g_iters = 8; /* tokens per request, requests per thread */
static vkllm_runtime *g_rt;
static vkllm_model *g_m;
static ref g_ref[N_SPEC];        /* each spec alone on g_m */
static atomic_int g_log_destroy; /* ERROR lines about vkllm_engine_destroy */

/* ---- failures from any thread (cmocka's asserts belong to the main thread) ---- */

static pthread_mutex_t g_fail_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_failed;
static char g_fail_msg[512];

static void tfail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tfail(const char *fmt, ...) {
    pthread_mutex_lock(&g_fail_mu);
    if (!atomic_load(&g_failed)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g_fail_msg, sizeof g_fail_msg, fmt, ap);
        va_end(ap);
        atomic_store(&g_failed, 1);
    }
    pthread_mutex_unlock(&g_fail_mu);
}

typedef struct body {
    void (*fn)(void);
} body;

static void *body_main(void *arg) {
    ((body *)arg)->fn();
    return NULL;
}

/* Runs fn on a thread; a deadlock ends the process with a message instead of hanging CI. */
static void with_watchdog(const char *name, void (*fn)(void)) {
    atomic_store(&g_failed, 0);
    body b = {fn};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, body_main, &b), 0);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WATCHDOG_S;
    if (pthread_timedjoin_np(th, NULL, &dl) == ETIMEDOUT) {
        fprintf(stderr, "%s: not finished after %d s: deadlock\n", name, WATCHDOG_S);
        fflush(stderr);
        _Exit(1);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    print_message("%s: %.1f s\n", name,
                  (double)(now.tv_sec - dl.tv_sec + WATCHDOG_S) +
                      (double)(now.tv_nsec - dl.tv_nsec) * 1e-9);
    if (atomic_load(&g_failed)) fail_msg("%s: %s", name, g_fail_msg);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- models, specs, references ---- */

static void on_log(void *user, vkllm_log_level level, const char *msg) {
    (void)user;
    if (level >= VKLLM_LOG_ERROR && strstr(msg, "vkllm_engine_destroy"))
        atomic_fetch_add(&g_log_destroy, 1);
    fprintf(stderr, "[log] %s\n", msg);
}

/* The default model on a runtime for device; NULL (and tfail) if either cannot be had. */
static vkllm_model *open_model(const char *device, vkllm_runtime **rt) {
    const char *path = getenv("VKLLM_MODEL");
    *rt = NULL;
    if (!path) {
        tfail("VKLLM_MODEL is not set (scripts/fetch_model.sh)");
        return NULL;
    }
    vkllm_runtime_desc rd = {.device = device,
                             .n_threads = API_TEST_THREADS,
                             .log = on_log,
                             .log_level = VKLLM_LOG_WARN};
    if (vkllm_runtime_create(&rd, rt) != VKLLM_OK) {
        tfail("runtime %s: %s", device, vkllm_runtime_last_error(NULL));
        *rt = NULL;
        return NULL;
    }
    vkllm_model *m = NULL;
    if (vkllm_model_load(*rt, &(vkllm_model_desc){.path = path}, &m) != VKLLM_OK)
        tfail("model %s: %s", path, vkllm_runtime_last_error(*rt));
    return m;
}

/* Spec i: its prompt, g_ntok tokens, greedy or (every third) sampled with a seed. */
static vkllm_request_desc spec_desc(int i) {
    vkllm_request_desc d = {.prompt = k_prompts[i], .max_tokens = g_ntok, .ignore_eog = true};
    if (i % 3 == 2) d.sampling = (vkllm_sampling){.temperature = 0.8f, .seed = 11u + (unsigned)i};
    return d;
}

static vkllm_engine *engine(vkllm_model *m, const vkllm_engine_desc *d) {
    vkllm_engine *e = NULL;
    if (vkllm_engine_create(m, d, &e) != VKLLM_OK) tfail("engine: %s", vkllm_model_last_error(m));
    return e;
}

/* Each spec alone, one after the other, on a manual engine. */
static void run_alone(vkllm_model *m, ref out[N_SPEC]) {
    vkllm_engine *e = engine(m, &(vkllm_engine_desc){.n_ctx = 128, .max_seqs = 4, .manual = true});
    if (!e) return;
    for (int i = 0; i < N_SPEC; i++) {
        vkllm_request_desc d = spec_desc(i);
        vkllm_request *r = NULL;
        if (vkllm_submit(e, &d, &r) != VKLLM_OK || vkllm_request_wait(r, NULL) != VKLLM_OK) {
            tfail("alone %d: %s", i, vkllm_engine_last_error(e));
            break;
        }
        const int32_t *ids = vkllm_request_tokens(r, &out[i].n);
        memcpy(out[i].ids, ids, out[i].n * sizeof *ids);
        vkllm_request_free(r);
    }
    vkllm_engine_destroy(e);
}

/* A finished request against its spec alone: all of the tokens when it ran to max_tokens, a
 * prefix when it was cancelled or its callback stopped it. */
static bool check_req(vkllm_request *r, const ref *want, const char *what, int i) {
    vkllm_request_result res = {0};
    vkllm_status st = vkllm_request_wait(r, &res);
    if (st != VKLLM_OK) {
        tfail("%s %d: wait: %s", what, i, vkllm_status_str(st));
        return false;
    }
    size_t n = 0;
    const int32_t *ids = vkllm_request_tokens(r, &n);
    const bool full = res.stop == VKLLM_STOP_MAX_TOKENS;
    if (!ids || (full && n != want->n) || n > want->n ||
        (!full && res.stop != VKLLM_STOP_CANCELLED && res.stop != VKLLM_STOP_CALLBACK)) {
        tfail("%s %d: %zu tokens (alone: %zu), stop %d", what, i, n, want->n, (int)res.stop);
        return false;
    }
    for (size_t k = 0; k < n; k++)
        if (ids[k] != want->ids[k]) {
            tfail("%s %d: token %zu is %d, alone %d", what, i, k, ids[k], want->ids[k]);
            return false;
        }
    return true;
}

/* on_token that records the tokens (read by the submitter once the request is done) */
typedef struct rec {
    atomic_int n;
    int32_t ids[MAX_TOK];
} rec;

static bool rec_token(void *user, int32_t id, const char *piece, size_t len) {
    (void)piece, (void)len;
    rec *c = user;
    const int k = atomic_load(&c->n);
    if (k < MAX_TOK) c->ids[k] = id;
    atomic_store(&c->n, k + 1);
    return true;
}

/* Until the request has produced k tokens (or finished). */
static void wait_tokens(const rec *c, vkllm_request *r, int k) {
    while (atomic_load(&c->n) < k && !vkllm_request_done(r))
        sleep_ms(1);
}

static int setup(void **state) {
    (void)state;
    g_m = open_model(g_device, &g_rt);
    if (g_m) run_alone(g_m, g_ref);
    if (atomic_load(&g_failed)) fail_msg("%s", g_fail_msg);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    vkllm_model_free(g_m);
    vkllm_runtime_destroy(g_rt);
    return 0;
}

/* ---- (a) serve-like: 4 threads submit, wait, cancel and free on one threaded engine ---- */

static vkllm_engine *g_e;

/* One thread's requests: each mode in turn (waited for; cancelled after its first token;
 * freed at once; freed after two tokens, while running). */
static void serve_requests(int t, bool manual) {
    for (int it = 0; it < g_iters; it++) {
        const int i = (t * 5 + it * 3) % N_SPEC, mode = (t + it) % 4;
        rec c;
        memset(&c, 0, sizeof c);
        atomic_init(&c.n, 0);
        vkllm_request_desc d = spec_desc(i);
        d.on_token = rec_token;
        d.user = &c;
        vkllm_request *r = NULL;
        if (vkllm_submit(g_e, &d, &r) != VKLLM_OK) {
            tfail("thread %d: submit: %s", t, vkllm_engine_last_error(g_e));
            return;
        }
        if (mode == 0) {
            /* a manual engine's host polls (thread 0 waits: it steps when nobody does) */
            while (manual && t != 0 && !vkllm_request_done(r))
                sleep_ms(1);
            if (!check_req(r, &g_ref[i], "waited", i)) return;
            size_t n = 0;
            const int32_t *ids = vkllm_request_tokens(r, &n);
            if ((size_t)atomic_load(&c.n) != n || memcmp(c.ids, ids, n * sizeof *ids) != 0)
                tfail("thread %d: on_token saw other tokens than the result", t);
        } else if (mode == 1) {
            wait_tokens(&c, r, 1);
            vkllm_request_cancel(r);
            if (!check_req(r, &g_ref[i], "cancelled", i)) return;
        } else if (mode == 3) {
            wait_tokens(&c, r, 2);
        }
        vkllm_request_free(r);
        if (mode == 3 && !manual) { /* no callback after vkllm_request_free */
            const int n = atomic_load(&c.n);
            sleep_ms(20);
            if (atomic_load(&c.n) != n) tfail("thread %d: on_token called after free", t);
        }
        if (it % 2 == 0) {
            vkllm_engine_stats st = {0};
            vkllm_engine_get_stats(g_e, &st);
            if (st.pages_used > st.pages_total)
                tfail("stats: %u pages used of %u", st.pages_used, st.pages_total);
        }
    }
}

static void *serve_thread(void *arg) {
    serve_requests((int)(intptr_t)arg, false);
    return NULL;
}

/* Until the engine holds no request (the freed ones are let go at its next steps). */
static void drain(vkllm_engine *e) {
    for (int k = 0; k < 100000; k++) {
        vkllm_engine_stats st = {0};
        vkllm_engine_get_stats(e, &st);
        if (st.running == 0 && st.waiting == 0) return;
        sleep_ms(2);
    }
}

static void serve_body(void) {
    g_e = engine(g_m, &(vkllm_engine_desc){.n_ctx = 128, .max_seqs = 6});
    if (!g_e) return;
    pthread_t th[4];
    for (intptr_t t = 0; t < 4; t++)
        pthread_create(&th[t], NULL, serve_thread, (void *)t);
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    drain(g_e);
    vkllm_engine_stats st = {0};
    vkllm_engine_get_stats(g_e, &st);
    print_message("serve: %llu steps, %llu tokens decoded, %u pages in use after\n",
                  (unsigned long long)st.steps, (unsigned long long)st.tokens_decoded,
                  st.pages_used);
    vkllm_engine_destroy(g_e);
}

static void test_serve(void **state) {
    (void)state;
    with_watchdog("serve", serve_body);
}

/* ---- (b) callbacks that call into their own engine, stats read meanwhile ---- */

typedef struct spawner {
    int idx, spec, calls;
    vkllm_request *kids[MAX_KIDS];
    int kid_spec[MAX_KIDS];
    rec kid_rec[MAX_KIDS];
    int n_kids;
    vkllm_request *victim; /* someone else's running request, freed from here */
    vkllm_session *sess;   /* vkllm_generate on the same runtime, from here */
    int gen_tokens, wait_refused;
    bool try_destroy;
} spawner;

typedef struct self_freer {
    vkllm_request *self;
    int n;
} self_freer;
static self_freer g_self[2][MAX_KIDS];

static bool self_free_token(void *user, int32_t id, const char *piece, size_t len) {
    (void)id, (void)piece, (void)len;
    self_freer *f = user;
    if (++f->n == 2)
        vkllm_request_free(f->self); /* no callback after this one */
    else if (f->n > 2)
        tfail("a freed request's on_token was called");
    return true;
}

static atomic_int g_stop_stats;
static atomic_long g_stats_reads;

static void *stats_thread(void *arg) {
    (void)arg;
    while (!atomic_load(&g_stop_stats)) {
        vkllm_engine_stats st = {0};
        vkllm_engine_get_stats(g_e, &st);
        if (st.pages_used > st.pages_total)
            tfail("stats: %u of %u pages", st.pages_used, st.pages_total);
        atomic_fetch_add(&g_stats_reads, 1);
        sched_yield();
    }
    return NULL;
}

/* The spawner's on_token, on the engine thread: a new request each token (a third of them kept
 * and checked, a third freed at the next token, a third freeing themselves), stats read; on
 * the first token a wait that must be refused and an engine destroy that must be ignored;
 * then another running request freed, and a vkllm_generate on the same runtime. */
static bool spawn_token(void *user, int32_t id, const char *piece, size_t len) {
    (void)id, (void)piece, (void)len;
    spawner *sp = user;
    const int k = sp->calls++;
    vkllm_engine_stats st = {0};
    vkllm_engine_get_stats(g_e, &st);
    if (st.pages_used > st.pages_total) tfail("stats in a callback");
    if (sp->n_kids < MAX_KIDS) {
        /* kind 0: kept, checked by the main thread; 1: freed by this callback at the next
         * token (queued or running); 2: frees itself from its own callback */
        const int j = sp->n_kids, spec = (sp->spec + 1 + j) % N_SPEC, kind = j % 3;
        if (j > 0 && (j - 1) % 3 == 1) {
            vkllm_request_free(sp->kids[j - 1]);
            sp->kids[j - 1] = NULL;
        }
        vkllm_request_desc d = spec_desc(spec);
        self_freer *f = &g_self[sp->idx][j];
        d.on_token = kind == 2 ? self_free_token : rec_token;
        d.user = kind == 2 ? (void *)f : (void *)&sp->kid_rec[j];
        vkllm_request *r = NULL;
        if (vkllm_submit(g_e, &d, &r) != VKLLM_OK) {
            tfail("submit from a callback: %s", vkllm_engine_last_error(g_e));
            return false;
        }
        f->self = r; /* its callback runs on this thread, at a later step */
        sp->kids[j] = kind == 2 ? NULL : r;
        sp->kid_spec[j] = spec;
        sp->n_kids++;
    }
    if (k == 0 && sp->try_destroy) {
        if (vkllm_request_wait(sp->kids[0], NULL) == VKLLM_ERR_INVALID_ARG)
            sp->wait_refused++;
        else if (!vkllm_request_done(sp->kids[0]))
            tfail("wait inside a callback returned");
        vkllm_engine_destroy(g_e); /* refused: it is this engine's thread */
    }
    if (k == 1 && sp->victim) {
        vkllm_request_free(sp->victim);
        sp->victim = NULL;
    }
    if (k == 2 && sp->sess) {
        run_out o;
        memset(&o, 0, sizeof o);
        vkllm_generate_desc gd = {.prompt = "Hello",
                                  .max_tokens = 2,
                                  .ignore_eog = true,
                                  .on_token = api_test_on_token,
                                  .user = &o};
        if (vkllm_generate(sp->sess, &gd, NULL) != VKLLM_OK)
            tfail("generate in a callback: %s", vkllm_session_last_error(sp->sess));
        sp->gen_tokens = o.n;
    }
    return true;
}

static spawner g_sp[2];

/* vkllm_generate's on_token, on the main thread while the engine runs the spawners: into the
 * same runtime's engine (stats, a submit), as the engine's thread steps */
typedef struct gen_cb {
    int n;
    vkllm_request *req;
} gen_cb;

static bool gen_token(void *user, int32_t id, const char *piece, size_t len) {
    (void)id, (void)piece, (void)len;
    gen_cb *g = user;
    vkllm_engine_stats st = {0};
    vkllm_engine_get_stats(g_e, &st);
    if (g->n++ == 0) {
        vkllm_request_desc d = spec_desc(1);
        if (vkllm_submit(g_e, &d, &g->req) != VKLLM_OK) tfail("submit from generate's on_token");
    }
    return true;
}

static void callbacks_body(void) {
    g_e = engine(g_m, &(vkllm_engine_desc){.n_ctx = 128, .max_seqs = 6});
    if (!g_e) return;
    memset(g_sp, 0, sizeof g_sp);
    memset(g_self, 0, sizeof g_self);
    atomic_store(&g_stop_stats, 0);
    atomic_store(&g_stats_reads, 0);
    pthread_t st_th;
    pthread_create(&st_th, NULL, stats_thread, NULL);
    const int log_destroy = atomic_load(&g_log_destroy);
    vkllm_session *sess = NULL;
    if (vkllm_session_create(g_m, &(vkllm_session_desc){.n_ctx = 64}, &sess) != VKLLM_OK)
        tfail("session: %s", vkllm_model_last_error(g_m));
    vkllm_request *victim = NULL, *sr[2] = {NULL, NULL};
    vkllm_request_desc vd = {.prompt = k_prompts[4], .max_tokens = 100, .ignore_eog = true};
    if (vkllm_submit(g_e, &vd, &victim) != VKLLM_OK) tfail("submit victim");
    for (int s = 0; s < 2; s++) {
        spawner *sp = &g_sp[s];
        sp->idx = s;
        sp->spec = s * 3; /* greedy specs 0 and 3 */
        if (s == 0) sp->victim = victim, sp->sess = sess, sp->try_destroy = true;
        vkllm_request_desc d = spec_desc(sp->spec);
        d.on_token = spawn_token;
        d.user = sp;
        if (vkllm_submit(g_e, &d, &sr[s]) != VKLLM_OK) tfail("submit spawner");
    }
    vkllm_session *sess2 = NULL;
    gen_cb gc = {0};
    if (vkllm_session_create(g_m, &(vkllm_session_desc){.n_ctx = 64}, &sess2) != VKLLM_OK)
        tfail("session: %s", vkllm_model_last_error(g_m));
    vkllm_generate_desc gd = {.prompt = k_prompts[2],
                              .max_tokens = 4,
                              .ignore_eog = true,
                              .on_token = gen_token,
                              .user = &gc};
    if (sess2 && vkllm_generate(sess2, &gd, NULL) != VKLLM_OK)
        tfail("generate: %s", vkllm_session_last_error(sess2));
    if (gc.n != 4 || !gc.req) tfail("generate's on_token: %d calls", gc.n);
    if (gc.req) check_req(gc.req, &g_ref[1], "from generate's on_token", 1);
    vkllm_request_free(gc.req);
    vkllm_session_destroy(sess2);
    /* the spawners' answers do not depend on what their callbacks do */
    for (int s = 0; s < 2; s++) {
        if (sr[s]) check_req(sr[s], &g_ref[g_sp[s].spec], "spawner", s);
        vkllm_request_free(sr[s]);
    }
    int kept = 0;
    for (int s = 0; s < 2; s++)
        for (int j = 0; j < g_sp[s].n_kids; j++) {
            vkllm_request *r = g_sp[s].kids[j];
            if (!r) continue;
            if (check_req(r, &g_ref[g_sp[s].kid_spec[j]], "kid", j)) kept++;
            vkllm_request_free(r);
        }
    drain(g_e);
    atomic_store(&g_stop_stats, 1);
    pthread_join(st_th, NULL);
    print_message("callbacks: %d + %d requests submitted from callbacks, %d checked, %ld stats "
                  "reads meanwhile, %d tokens generated inside a callback\n",
                  g_sp[0].n_kids, g_sp[1].n_kids, kept, (long)atomic_load(&g_stats_reads),
                  g_sp[0].gen_tokens);
    if (g_sp[0].n_kids != g_ntok || g_sp[1].n_kids != g_ntok)
        tfail("one request per spawner token: %d, %d of %d", g_sp[0].n_kids, g_sp[1].n_kids,
              g_ntok);
    if (g_sp[0].wait_refused != 1) tfail("vkllm_request_wait inside a callback not refused");
    if (atomic_load(&g_log_destroy) != log_destroy + 1)
        tfail("vkllm_engine_destroy inside a callback: no error logged");
    if (g_sp[0].gen_tokens != 2)
        tfail("vkllm_generate inside a callback: %d tokens", g_sp[0].gen_tokens);
    for (int s = 0; s < 2; s++)
        for (int j = 2; j < g_sp[s].n_kids; j += 3)
            if (g_self[s][j].n > 2) tfail("on_token after the request freed itself");
    vkllm_engine_destroy(g_e); /* now it goes */
    vkllm_session_destroy(sess);
}

static void test_callbacks(void **state) {
    (void)state;
    with_watchdog("callbacks", callbacks_body);
}

/* ---- (c) two runtimes, two threads ---- */

typedef struct rt_job {
    vkllm_model *m;
    ref got[N_SPEC];
    run_out gen; /* vkllm_generate, greedy */
} rt_job;

/* A runtime's work: every spec at once on a threaded engine, then a vkllm_generate. */
static void *rt_work(void *arg) {
    rt_job *j = arg;
    vkllm_engine *e = engine(j->m, &(vkllm_engine_desc){.n_ctx = 128, .max_seqs = 6});
    if (!e) return NULL;
    vkllm_request *r[N_SPEC] = {0};
    for (int i = 0; i < N_SPEC; i++) {
        vkllm_request_desc d = spec_desc(i);
        if (vkllm_submit(e, &d, &r[i]) != VKLLM_OK) tfail("submit: %s", vkllm_engine_last_error(e));
    }
    for (int i = 0; i < N_SPEC && r[i]; i++) {
        if (vkllm_request_wait(r[i], NULL) != VKLLM_OK) tfail("wait %d", i);
        const int32_t *ids = vkllm_request_tokens(r[i], &j->got[i].n);
        if (ids) memcpy(j->got[i].ids, ids, j->got[i].n * sizeof *ids);
        vkllm_request_free(r[i]);
    }
    vkllm_engine_destroy(e);
    vkllm_session *s = NULL;
    if (vkllm_session_create(j->m, &(vkllm_session_desc){.n_ctx = 64}, &s) != VKLLM_OK) {
        tfail("session: %s", vkllm_model_last_error(j->m));
        return NULL;
    }
    memset(&j->gen, 0, sizeof j->gen);
    vkllm_generate_desc gd = {.prompt = k_prompts[3],
                              .max_tokens = g_ntok,
                              .ignore_eog = true,
                              .on_token = api_test_on_token,
                              .user = &j->gen};
    if (vkllm_generate(s, &gd, NULL) != VKLLM_OK)
        tfail("generate: %s", vkllm_session_last_error(s));
    vkllm_session_destroy(s);
    return NULL;
}

static void same_job(const rt_job *a, const rt_job *b, const char *what) {
    for (int i = 0; i < N_SPEC; i++)
        if (a->got[i].n != b->got[i].n ||
            memcmp(a->got[i].ids, b->got[i].ids, a->got[i].n * sizeof a->got[i].ids[0]) != 0)
            tfail("%s: request %d differs from the runtime alone", what, i);
    if (a->gen.n != b->gen.n || memcmp(a->gen.ids, b->gen.ids, sizeof a->gen.ids) != 0)
        tfail("%s: vkllm_generate differs from the runtime alone", what);
}

static const char *g_pair[2];

typedef struct rt_opener {
    const char *device;
    vkllm_runtime *rt;
    vkllm_model *m;
} rt_opener;

static void *open_thread(void *arg) {
    rt_opener *o = arg;
    o->m = open_model(o->device, &o->rt);
    return NULL;
}

static void two_runtimes_body(void) {
    static rt_opener op[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) { /* made on two threads at once too */
        op[k].device = g_pair[k];
        pthread_create(&th[k], NULL, open_thread, &op[k]);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    vkllm_runtime *rt[2] = {op[0].rt, op[1].rt};
    vkllm_model *m[2] = {op[0].m, op[1].m};
    if (!m[0] || !m[1]) goto out;
    for (int k = 0; k < 2; k++)
        print_message("runtime %d: %s\n", k, vkllm_runtime_backend_name(rt[k]));
    static rt_job alone[2], both[2];
    memset(alone, 0, sizeof alone);
    memset(both, 0, sizeof both);
    for (int k = 0; k < 2; k++) {
        alone[k].m = both[k].m = m[k];
        rt_work(&alone[k]);
    }
    for (int k = 0; k < 2; k++)
        pthread_create(&th[k], NULL, rt_work, &both[k]);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    same_job(&alone[0], &both[0], g_pair[0]);
    same_job(&alone[1], &both[1], g_pair[1]);
    /* and each request equals itself alone on its own engine (g_ref: the same device) */
    for (int k = 0; k < 2; k++)
        if (strcmp(g_pair[k], g_device) == 0)
            for (int i = 0; i < N_SPEC; i++)
                if (alone[k].got[i].n != g_ref[i].n ||
                    memcmp(alone[k].got[i].ids, g_ref[i].ids, g_ref[i].n * sizeof(int32_t)))
                    tfail("%s: request %d differs from the batch-free reference", g_pair[k], i);
out:
    for (int k = 0; k < 2; k++) {
        vkllm_model_free(m[k]);
        vkllm_runtime_destroy(rt[k]);
    }
}

static void test_two_runtimes(void **state) {
    (void)state;
    if (strcmp(g_device, "cpu") == 0) {
        g_pair[0] = g_pair[1] = "cpu";
        with_watchdog("two CPU runtimes", two_runtimes_body);
        return;
    }
    g_pair[0] = g_device, g_pair[1] = "cpu";
    with_watchdog("a Vulkan and a CPU runtime", two_runtimes_body);
    g_pair[0] = g_pair[1] = g_device;
    with_watchdog("two Vulkan runtimes", two_runtimes_body);
}

/* ---- (d) a manual engine: vkllm_step on one thread, submits and waits on others ---- */

static atomic_int g_stop_stepping;
static atomic_long g_steps, g_busy;

static void *stepper_thread(void *arg) {
    (void)arg;
    uint32_t active = 1;
    while (!atomic_load(&g_stop_stepping) || active) {
        const vkllm_status st = vkllm_step(g_e, 0.002, &active);
        if (st == VKLLM_OK)
            atomic_fetch_add(&g_steps, 1);
        else if (st == VKLLM_ERR_INVALID_ARG)
            atomic_fetch_add(&g_busy, 1); /* a waiter steps */
        else
            tfail("vkllm_step: %s", vkllm_engine_last_error(g_e));
        if (st != VKLLM_OK || !active) sleep_ms(1);
    }
    return NULL;
}

static bool step_inside(void *user, int32_t id, const char *piece, size_t len) {
    (void)id, (void)piece, (void)len;
    if (vkllm_step(g_e, 0.0, NULL) != VKLLM_ERR_INVALID_ARG)
        tfail("vkllm_step inside the engine's own callback was not refused");
    ++*(int *)user;
    return true;
}

static void *manual_thread(void *arg) {
    serve_requests((int)(intptr_t)arg, true);
    return NULL;
}

static void manual_body(void) {
    g_e = engine(g_m, &(vkllm_engine_desc){.n_ctx = 128, .max_seqs = 6, .manual = true});
    if (!g_e) return;
    atomic_store(&g_stop_stepping, 0);
    atomic_store(&g_steps, 0);
    atomic_store(&g_busy, 0);
    pthread_t step_th, th[3];
    pthread_create(&step_th, NULL, stepper_thread, NULL);
    int inside = 0;
    vkllm_request *r = NULL;
    vkllm_request_desc d = {.prompt = k_prompts[0],
                            .max_tokens = 2,
                            .ignore_eog = true,
                            .on_token = step_inside,
                            .user = &inside};
    if (vkllm_submit(g_e, &d, &r) != VKLLM_OK) tfail("submit");
    for (intptr_t t = 0; t < 3; t++)
        pthread_create(&th[t], NULL, manual_thread, (void *)t);
    for (int t = 0; t < 3; t++)
        pthread_join(th[t], NULL);
    if (r && vkllm_request_wait(r, NULL) != VKLLM_OK) tfail("wait");
    vkllm_request_free(r);
    if (inside != 2) tfail("step_inside: %d calls", inside);
    atomic_store(&g_stop_stepping, 1);
    pthread_join(step_th, NULL);
    print_message("manual: %ld vkllm_step calls on the stepping thread, %ld refused while a "
                  "waiter stepped\n",
                  (long)atomic_load(&g_steps), (long)atomic_load(&g_busy));
    vkllm_engine_destroy(g_e);
}

static void test_manual(void **state) {
    (void)state;
    with_watchdog("manual", manual_body);
}

int main(void) {
    const char *dev = getenv("VKLLM_TEST_DEVICE");
    if (dev && *dev) g_device = dev;
#ifdef VKLLM_TEST_SANITIZED
    g_ntok = 8, g_iters = 6;
#endif
    if (strcmp(g_device, "cpu") != 0) g_ntok = 4, g_iters = 3; /* lavapipe: ~50x slower */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serve),
        cmocka_unit_test(test_callbacks),
        cmocka_unit_test(test_manual),
        cmocka_unit_test(test_two_runtimes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
