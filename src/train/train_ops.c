/* The training ops on float (tr_*): train_ops_impl.h's body with TRT float, and the parts that
 * do not depend on the element type (learning rate schedule, AdamW's checks, LoRA's factor). */
#include "train/train_ops.h"

#define TRT float
#define TRN(name) tr_##name
#include "train/train_ops_impl.h"

/* M_PI is POSIX, not C11 */
#define TR_PI 3.14159265358979323846

double tr_lr_at(const tr_lr_sched *s, uint64_t step) {
    if (step < s->n_warmup) return s->lr_max * (double)(step + 1) / (double)s->n_warmup;
    const uint64_t span = s->n_total > s->n_warmup ? s->n_total - s->n_warmup : 0;
    double p = span ? (double)(step - s->n_warmup) / (double)span : 1.0;
    if (p > 1.0) p = 1.0;
    return s->lr_min + (s->lr_max - s->lr_min) * 0.5 * (1.0 + cos(TR_PI * p));
}

vkllm_status tr_adamw_check(const tr_adamw_hp *hp, core_err *err) {
    if (!(hp->lr >= 0) || !isfinite(hp->lr))
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "adamw: learning rate %g is not >= 0", hp->lr);
    if (!(hp->beta1 >= 0 && hp->beta1 < 1) || !(hp->beta2 >= 0 && hp->beta2 < 1))
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "adamw: beta1 %g and beta2 %g must be in [0, 1)", hp->beta1, hp->beta2);
    if (!(hp->eps > 0) || !isfinite(hp->eps))
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "adamw: eps %g is not > 0", hp->eps);
    if (!(hp->weight_decay >= 0) || !isfinite(hp->weight_decay))
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "adamw: weight decay %g is not >= 0",
                         hp->weight_decay);
    return VKLLM_OK;
}

double tr_lora_scale(double scale, double alpha, uint32_t rank) {
    return alpha != 0 && rank ? scale * alpha / (double)rank : scale;
}
