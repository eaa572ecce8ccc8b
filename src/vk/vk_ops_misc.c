/* Row and element-wise ops: RMSNorm and SwiGLU. Both are bandwidth-bound and need nothing
 * past tier 0, so tier 1+ devices run the tier-0 build of rms_norm and the tier-1 build of
 * swiglu (fp16 extensions enabled, same arithmetic). */
#include "vk/vk_ops.h"

#include <stdio.h>
#include <string.h>

struct vk_misc {
    vk_dev *d;
    vk_pipe rms_norm, swiglu;
    vk_pipe rms_lane; /* rms_norm.comp ROW_LANE: a row per invocation */
    bool lane;        /* CPU drivers: RMSNorm through rms_lane */
};

#define LANE_WG 8 /* lavapipe's SIMD width */

vkllm_status vk_pick_shader(const vk_dev *d, const char *stem, char *out, size_t cap) {
    for (int t = d->tier; t >= 0; t--) {
        snprintf(out, cap, "%s_t%d", stem, t);
        if (vk_shader_find(out)) return VKLLM_OK;
    }
    return VKLLM_ERR_INTERNAL;
}

vkllm_status vk_pipe_for_tier(vk_dev *d, const char *stem, uint32_t n_bindings,
                              const uint32_t local_size[3], const vk_spec *spec, vk_pipe *out,
                              core_err *err) {
    char name[96];
    if (vk_pick_shader(d, stem, name, sizeof name) != VKLLM_OK)
        return core_errf(err, VKLLM_ERR_INTERNAL, "no shader '%s' for tier %d", stem, d->tier);
    return vk_pipe_defer(d, name, n_bindings, local_size, spec, out, err);
}

vkllm_status vk_misc_create(vk_dev *d, vk_misc **out, core_err *err) {
    vk_misc *m = core_calloc(d->alloc, 1, sizeof *m);
    if (!m) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    m->d = d;
    /* lavapipe: the serial sum of a row otherwise runs on one lane of a 256-thread group */
    m->lane = strcmp(d->info.kind, "cpu-vulkan") == 0;
    vkllm_status st = vk_pipe_for_tier(d, "rms_norm", 4, (uint32_t[3]){256, 1, 1}, NULL,
                                       &m->rms_norm, err);
    const vk_spec lane = {.n = 1, .v = {1}};
    if (st == VKLLM_OK)
        st = vk_pipe_for_tier(d, "rms_norm", 4, (uint32_t[3]){LANE_WG, 1, 1}, &lane,
                              &m->rms_lane, err);
    if (st == VKLLM_OK)
        st = vk_pipe_for_tier(d, "swiglu", 3, (uint32_t[3]){256, 1, 1}, NULL, &m->swiglu, err);
    if (st != VKLLM_OK) {
        vk_misc_destroy(m);
        return st;
    }
    *out = m;
    return VKLLM_OK;
}

void vk_misc_destroy(vk_misc *m) {
    if (!m) return;
    vk_pipe_destroy(m->d, &m->rms_norm);
    vk_pipe_destroy(m->d, &m->rms_lane);
    vk_pipe_destroy(m->d, &m->swiglu);
    core_free(m->d->alloc, m);
}

vkllm_status vk_rms_norm(vk_rec *r, vk_misc *m, vk_act src, uint32_t src_row0,
                         const vk_slice *gather, vk_slice w, vk_act dst, uint32_t n,
                         uint32_t width, float eps, core_err *err) {
    if (width == 0 || width >= (1u << 24)) /* rms_norm.comp divides by it in 24 bits */
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan rms_norm: rows of %u", width);
    struct {
        uint32_t n_rows, width, stride_s, stride_d;
        float eps;
        uint32_t src_row0, gather;
    } pc = {n, width, src.stride, dst.stride, eps, src_row0, gather ? 1u : 0u};
    /* without gather the parameter binding is unused: the weights stand in for it */
    vk_slice b[4] = {src.s, w, dst.s, gather ? *gather : w};
    if (m->lane)
        return vk_rec_dispatch(r, &m->rms_lane, b, 4, &pc, sizeof pc, (n + LANE_WG - 1) / LANE_WG,
                               1, 1, err);
    return vk_rec_dispatch(r, &m->rms_norm, b, 4, &pc, sizeof pc, n, 1, 1, err);
}

bool vk_misc_get_lane(const vk_misc *m) { return m->lane; }
void vk_misc_set_lane(vk_misc *m, bool lane) { m->lane = lane; }

vkllm_status vk_swiglu(vk_rec *r, vk_misc *m, vk_act gate, vk_act up, vk_act dst, uint32_t n,
                       uint32_t width, core_err *err) {
    struct {
        uint32_t n_rows, width, stride_g, stride_u, stride_d;
    } pc = {n, width, gate.stride, up.stride, dst.stride};
    vk_slice b[3] = {gate.s, up.s, dst.s};
    return vk_rec_dispatch(r, &m->swiglu, b, 3, &pc, sizeof pc, (width + 255) / 256, n, 1, err);
}
