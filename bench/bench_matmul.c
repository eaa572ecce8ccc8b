/* Micro-benchmark of the CPU matmul kernels (not a test): the shapes of the default model
 * (SmolLM2-135M: Q4_1 layers 576 <-> 1536, Q8_0 output head 49152 x 576), decode (1 token)
 * and prefill (512 tokens), on 1 and 2 threads, for every kernel table the CPU has.
 *
 * Decode cycles over enough distinct weight matrices to exceed the last-level cache, so its
 * GB/s is what a real model (~90 MB of weights) sees, not an L2 figure. Prints weight GB/s
 * and GFLOP/s (2 * rows * cols * tokens / time; the activation quantization is not timed),
 * by wall clock and, on one thread, by the thread's CPU time.
 *
 * Then the packed 2:4 formats (docs/sparse.md) against Q4_0 at larger shapes (attention and
 * FFN matrices of 7B / 1B models), the dense twin a 2:4 model is compared with; S24_Q4 both
 * in the file layout and, on tables that read them, in the quads the CPU backend repacks it
 * into (cpu/cpu_s24.h).
 *
 *   bench_matmul [seconds per case, default 1] [only this table: scalar, avx2, ...]
 *                [only cases whose name contains this: "s24", "4096", ...]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_barrier_t */
#endif
#include "core/common.h"
#include "core/quant.h"
#include "cpu/cpu_kernels.h"
#include "cpu/cpu_s24.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bcase {
    const char *name;
    quant_type type;
    int64_t rows, cols, tokens;
    bool quads; /* S24_Q4 repacked in quads (cpu_s24.h), as the CPU backend runs it */
} bcase;

typedef struct job {
    const cpu_kernels *k;
    cpu_matmul_args a;
    const uint8_t *w; /* n_mats matrices back to back */
    size_t mat_bytes;
    int n_mats, reps;
    int ith, nth;
    pthread_barrier_t *bar;
} job;

static void *run_job(void *p) {
    job *j = p;
    /* rows split as the backend does: in multiples of the row block */
    const int64_t rows = j->a.r1, blocks = (rows + CPU_KERN_ROW_BLOCK - 1) / CPU_KERN_ROW_BLOCK;
    int64_t b0 = blocks * j->ith / j->nth, b1 = blocks * (j->ith + 1) / j->nth;
    cpu_matmul_args a = j->a;
    a.r0 = b0 * CPU_KERN_ROW_BLOCK;
    a.r1 = b1 * CPU_KERN_ROW_BLOCK < rows ? b1 * CPU_KERN_ROW_BLOCK : rows;
    for (int r = 0; r < j->reps; r++) {
        a.w = j->w + (size_t)(r % j->n_mats) * j->mat_bytes;
        if (a.r0 < a.r1) j->k->matmul(&a);
        pthread_barrier_wait(j->bar);
    }
    return NULL;
}

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds per repetition, wall clock; *cpu gets the calling thread's CPU seconds per
 * repetition, which on one thread is the kernel's own time even on a busy machine. */
static double time_case(const cpu_kernels *k, const bcase *c, int nth, const uint8_t *w, int n_mats,
                        const uint8_t *xq, uint64_t xrb, float *y, int reps, double *cpu) {
    uint64_t wrb;
    quant_row_bytes(c->type, (uint64_t)c->cols, &wrb);
    const size_t mat = c->quads ? cpu_s24_quads_bytes(c->rows, c->cols) : wrb * (size_t)c->rows;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)nth);
    job jobs[8];
    pthread_t th[8];
    for (int i = 0; i < nth; i++) {
        jobs[i] = (job){.k = k,
                        .w = w,
                        .mat_bytes = mat,
                        .n_mats = n_mats,
                        .reps = reps,
                        .ith = i,
                        .nth = nth,
                        .bar = &bar,
                        .a = {.w_type = c->type,
                              .w_row_bytes = wrb,
                              .n_in = c->cols,
                              .r0 = 0,
                              .r1 = c->rows,
                              .x = xq,
                              .x_row_bytes = xrb,
                              .n_tokens = c->tokens,
                              .y = y,
                              .y_stride = c->rows,
                              .w_quads = c->quads}};
    }
    const double t0 = core_time_s(), c0 = thread_cpu_s();
    for (int i = 1; i < nth; i++)
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    run_job(&jobs[0]);
    const double c1 = thread_cpu_s();
    for (int i = 1; i < nth; i++)
        pthread_join(th[i], NULL);
    const double dt = core_time_s() - t0;
    pthread_barrier_destroy(&bar);
    *cpu = (c1 - c0) / reps;
    return dt / reps;
}

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) & 0xffffff) / 16777216.0f - 0.5f;
}

int main(int argc, char **argv) {
    const double budget = argc > 1 ? atof(argv[1]) : 1.0;
    const char *only = argc > 2 && *argv[2] ? argv[2] : NULL;
    const char *only_case = argc > 3 ? argv[3] : NULL;
    const bcase cases[] = {
        {"decode  q4_1 1536x576 ", QT_Q4_1, 1536, 576, 1, false},
        {"decode  q4_1 576x1536 ", QT_Q4_1, 576, 1536, 1, false},
        {"decode  q8_0 49152x576", QT_Q8_0, 49152, 576, 1, false},
        {"prefill q4_1 1536x576 ", QT_Q4_1, 1536, 576, 512, false},
        {"prefill q4_1 576x1536 ", QT_Q4_1, 576, 1536, 512, false},
        {"prefill q8_0 49152x576", QT_Q8_0, 49152, 576, 512, false},
        {"decode  q4_0   4096x4096", QT_Q4_0, 4096, 4096, 1, false},
        {"decode  s24_q4 4096x4096", QT_S24_Q4, 4096, 4096, 1, false},
        {"decode  s24_q4 quads 4096x4096", QT_S24_Q4, 4096, 4096, 1, true},
        {"decode  s24_q8 4096x4096", QT_S24_Q8, 4096, 4096, 1, false},
        {"decode  q4_0   2048x8192", QT_Q4_0, 2048, 8192, 1, false},
        {"decode  s24_q4 2048x8192", QT_S24_Q4, 2048, 8192, 1, false},
        {"decode  s24_q4 quads 2048x8192", QT_S24_Q4, 2048, 8192, 1, true},
        {"prefill q4_0   4096x4096", QT_Q4_0, 4096, 4096, 64, false},
        {"prefill s24_q4 4096x4096", QT_S24_Q4, 4096, 4096, 64, false},
        {"prefill s24_q4 quads 4096x4096", QT_S24_Q4, 4096, 4096, 64, true},
    };
    uint64_t seed = 1;
    for (int isa = CPU_KERN_SCALAR; isa < CPU_KERN_COUNT; isa++) {
        const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)isa);
        if (!k || (only && strcmp(only, k->name) != 0)) continue;
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const bcase *c = &cases[ci];
            if (only_case && !strstr(c->name, only_case)) continue;
            if (c->quads && !k->s24_quads) continue;
            uint64_t wrb, xrb;
            const quant_traits *qt = quant_traits_of(c->type);
            quant_row_bytes(c->type, (uint64_t)c->cols, &wrb);
            quant_row_bytes(qt->vec_dot_type, (uint64_t)c->cols, &xrb);
            const size_t mat =
                c->quads ? cpu_s24_quads_bytes(c->rows, c->cols) : wrb * (size_t)c->rows;
            /* decode: >= 64 MB of distinct weights so they come from memory, as in a model */
            const int n_mats = c->tokens == 1 ? (int)((64u << 20) / mat + 1) : 1;
            uint8_t *w = malloc(mat * (size_t)n_mats);
            uint8_t *xq = malloc(xrb * (size_t)c->tokens);
            float *y = malloc(sizeof(float) * (size_t)(c->rows * c->tokens));
            float *row = malloc(sizeof(float) * (size_t)c->cols);
            uint8_t *file = c->quads ? malloc(wrb * (size_t)c->rows) : NULL;
            for (int64_t r = 0; r < c->rows * n_mats; r++) {
                for (int64_t i = 0; i < c->cols; i++)
                    row[i] = frand(&seed);
                if (!c->quads) {
                    qt->quant(row, w + (size_t)r * wrb, c->cols);
                    continue;
                }
                qt->quant(row, file + (size_t)(r % c->rows) * wrb, c->cols);
                if (r % c->rows == c->rows - 1)
                    cpu_s24_quads_pack(file, wrb, c->rows, c->cols,
                                       w + (size_t)(r / c->rows) * mat);
            }
            free(file);
            for (int64_t t = 0; t < c->tokens; t++) {
                for (int64_t i = 0; i < c->cols; i++)
                    row[i] = frand(&seed);
                k->quantize_row(qt->vec_dot_type, row, xq + (size_t)t * xrb, c->cols);
            }
            for (int nth = 1; nth <= 2; nth++) {
                /* calibrate the repetitions to the time budget */
                double cpu;
                double per = time_case(k, c, nth, w, n_mats, xq, xrb, y, 1, &cpu);
                int reps = (int)(budget / (per > 1e-7 ? per : 1e-7));
                if (reps < 1) reps = 1;
                if (reps > 100000) reps = 100000;
                per = time_case(k, c, nth, w, n_mats, xq, xrb, y, reps, &cpu);
                const double flops = 2.0 * (double)c->rows * (double)c->cols * (double)c->tokens;
                printf("%-7s %s  %d thr  %9.3f ms  %7.2f GB/s  %8.2f GFLOP/s", k->name, c->name,
                       nth, per * 1e3, (double)mat / per / 1e9, flops / per / 1e9);
                if (nth == 1) /* CPU time: the figure to compare on a loaded machine */
                    printf("   | cpu %9.3f ms  %7.2f GB/s  %8.2f GFLOP/s", cpu * 1e3,
                           (double)mat / cpu / 1e9, flops / cpu / 1e9);
                printf("\n");
                fflush(stdout);
                if (k->isa == CPU_KERN_SCALAR && c->tokens > 1) break; /* slow: 1 thread */
            }
            free(w);
            free(xq);
            free(y);
            free(row);
        }
    }
    return 0;
}
