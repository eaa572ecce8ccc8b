/* A model split over several backends: contiguous layer ranges (stages), each run by its own
 * backend on a view of the model (eng_model_stage), the residual stream passed from one stage
 * to the next through host memory every step. The split is itself an eng_backend, so the
 * session, the engine and the tools run a split model as they run any other. It belongs to one
 * model; the stages' backends belong to the runtime and are shared with its other models. */
#ifndef VKLLM_ENGINE_SPLIT_H
#define VKLLM_ENGINE_SPLIT_H

#include "engine/engine.h"

#define ENG_SPLIT_MAX 8 /* stages */

typedef struct eng_split_stage {
    eng_backend *be; /* the runtime's; not owned */
    uint32_t l0, l1; /* layers [l0, l1) of the whole model */
    bool embed, head;
    char device[32]; /* how the runtime names the device: "cpu", "vulkan:0" */
} eng_split_stage;

/* A split of m over n stages (1 <= n <= ENG_SPLIT_MAX), covering the layers in order, the
 * first with the embedding and the last with the head. Attach m to it (model_attach) before
 * making contexts; the stages' views live as long as the split. */
vkllm_status eng_split_create(const vkllm_allocator *a, const eng_model *m,
                              const eng_split_stage *stages, uint32_t n, eng_backend **out,
                              core_err *err);

/* Its stages, and the view each runs (NULL if not a split). */
uint32_t eng_split_stages(const eng_backend *be, const eng_split_stage **stages,
                          const eng_model **views);

/* One line: "cpu [embd, 0-14] + vulkan:0 [15-29, head]" */
void eng_split_describe(const eng_split_stage *stages, uint32_t n, char *buf, size_t cap);

#endif
