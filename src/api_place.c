/* Placement: which device runs which of a model's layers.
 *
 * The runtime lists its devices (vkllm_runtime_desc.device); a model's layers go to them in
 * list order as consecutive ranges, in the shares vkllm_model_desc.split gives (equal by
 * default), the token embedding with the first range and the output head with the last. Two
 * things move layers to the CPU backend, ahead of the listed devices' ranges:
 *  - gpu_layers (llama.cpp's -ngl): only the last N layers go to the Vulkan devices; the
 *    output head then stays on the CPU too unless every layer is on a GPU (llama.cpp's rule);
 *  - memory: a Vulkan device takes only the layers its room holds (vk_dev_room: its cap, else
 *    its budget) beside room for a context of n_ctx_hint tokens and the activations of a
 *    512-token batch; what does not fit goes to the next device with room, then to the CPU.
 * A model that ends up on one device runs on that device's backend directly; otherwise on a
 * split (engine/split.h) of the stages, made and owned by the model. */
#include "api_abi.h"
#include "api_internal.h"
#include "engine/split.h"
#include "vk/vk.h"
#include "vk/vk_backend.h"

#include <stdio.h>
#include <string.h>

static double mib(uint64_t b) {
    return (double)b / 1048576.0;
}

static bool is_vulkan(const eng_backend *be) {
    return strcmp(be->info.backend, "vulkan") == 0;
}

/* Device bytes weights take on a Vulkan device: their bytes, and the arena's slack (the tail
 * of each buffer that the next tensor did not fit, buffers being at most
 * maxStorageBufferRange: 128 MiB on some devices). */
static uint64_t dev_bytes(uint64_t bytes) {
    return bytes + bytes / 8;
}

/* What every placement works from. */
typedef struct place_ctx {
    vkllm_runtime *rt;
    const eng_model *em;
    uint32_t L;
    uint64_t kv_layer;   /* KV cache of one layer for n_ctx_hint tokens */
    uint64_t act;        /* activations and scratch of a context, any device */
    uint64_t embd, head; /* bytes of the token embedding, of the final norm and head */
    uint64_t logits;     /* the head's logits and readback rows (16 entries) */
} place_ctx;

/* Layers [0, L) in shares: entry i gets the layers between the rounded cumulative shares. */
static void share_out(uint32_t L, const float *w, uint32_t n, uint32_t *count) {
    double total = 0, cum = 0;
    for (uint32_t i = 0; i < n; i++)
        total += w[i];
    uint32_t prev = 0;
    for (uint32_t i = 0; i < n; i++) {
        cum += w[i];
        uint32_t b = total > 0 ? (uint32_t)(L * cum / total + 0.5) : 0;
        if (i + 1 == n) b = L;
        if (b < prev) b = prev;
        if (b > L) b = L;
        count[i] = b - prev;
        prev = b;
    }
}

static uint64_t layer_need(const place_ctx *p, uint32_t l) {
    return dev_bytes(eng_layer_bytes(&p->em->layers[l])) + p->kv_layer;
}

/* Stages from per-entry layer counts: the implicit CPU range first, the listed devices in
 * order, a CPU head stage last when head_on_cpu. Adjacent stages on one backend merge. */
static uint32_t make_stages(const place_ctx *p, uint32_t cpu_front, bool embed_on_cpu,
                            const uint32_t *count, bool head_on_cpu, eng_backend *cpu,
                            eng_split_stage *st) {
    vkllm_runtime *rt = p->rt;
    uint32_t n = 0, l = 0;
    if (cpu_front || embed_on_cpu) {
        st[n++] = (eng_split_stage){.be = cpu, .l0 = 0, .l1 = cpu_front};
        snprintf(st[0].device, sizeof st[0].device, "cpu");
        l = cpu_front;
    }
    for (uint32_t i = 0; i < rt->n_devs; i++) {
        if (count[i] == 0) continue;
        if (n && st[n - 1].be == rt->devs[i]) {
            st[n - 1].l1 += count[i];
        } else {
            st[n] = (eng_split_stage){.be = rt->devs[i], .l0 = l, .l1 = l + count[i]};
            snprintf(st[n].device, sizeof st[n].device, "%s", rt->dev_names[i]);
            n++;
        }
        l += count[i];
    }
    if (head_on_cpu && !(n && st[n - 1].be == cpu)) {
        st[n] = (eng_split_stage){.be = cpu, .l0 = p->L, .l1 = p->L};
        snprintf(st[n].device, sizeof st[n].device, "cpu");
        n++;
    }
    if (n == 0) { /* no layer anywhere (a model of no layers): the first device */
        st[n] = (eng_split_stage){.be = rt->devs[0], .l0 = 0, .l1 = 0};
        snprintf(st[n].device, sizeof st[n].device, "%s", rt->dev_names[0]);
        n++;
    }
    st[0].embed = true;
    st[n - 1].head = true;
    return n;
}

vkllm_status api_place(vkllm_model *m, const vkllm_model_desc *desc, core_err *err) {
    vkllm_runtime *rt = m->rt;
    const eng_model *em = &m->em;
    const model_config *cfg = &em->cfg;
    const uint32_t L = cfg->n_layer, nd = rt->n_devs;
    if (desc->split && desc->n_split != nd)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "split: %u shares for %u device%s (one per device of the runtime's "
                         "list)",
                         desc->n_split, nd, nd == 1 ? "" : "s");
    float w[RT_MAX_DEVS];
    double sum = 0;
    for (uint32_t i = 0; i < nd; i++) {
        w[i] = desc->split ? desc->split[i] : 1.0f;
        if (!(w[i] >= 0.0f) || w[i] > 1e6f)
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "split: share %u is %g (a number >= 0 is needed)", i, (double)w[i]);
        sum += w[i];
    }
    if (!(sum > 0)) return core_errf(err, VKLLM_ERR_INVALID_ARG, "split: the shares sum to zero");
    if (desc->gpu_layers_plus1 < 0)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "gpu_layers_plus1 %d is negative",
                         desc->gpu_layers_plus1);
    uint32_t n_vk = 0;
    for (uint32_t i = 0; i < nd; i++)
        n_vk += is_vulkan(rt->devs[i]);
    const bool ngl_set = desc->gpu_layers_plus1 > 0;
    uint32_t ngl = ngl_set ? (uint32_t)(desc->gpu_layers_plus1 - 1) : L;
    if (ngl_set && n_vk == 0)
        rt_log(rt, VKLLM_LOG_INFO, "gpu layers: no Vulkan device in use, every layer on the CPU");
    if (ngl > L) {
        if (ngl_set)
            rt_log(rt, VKLLM_LOG_INFO,
                   "gpu layers: %u asked for, the model has %u: all of them and the output "
                   "head on the GPU",
                   ngl, L);
        ngl = L;
    }

    uint32_t hint = desc->n_ctx_hint ? desc->n_ctx_hint : cfg->n_ctx_train;
    if (!desc->n_ctx_hint && (hint == 0 || hint > 4096)) hint = 4096;
    place_ctx p = {.rt = rt, .em = em, .L = L};
    p.kv_layer = 2ull * hint * eng_kv_row_bytes(cfg->n_head_kv * cfg->head_dim, false);
    const uint64_t widths = 2ull * cfg->n_embd + 2ull * cfg->n_head * cfg->head_dim +
                            2ull * cfg->n_head_kv * cfg->head_dim + 2ull * cfg->n_ff;
    /* a context's activations for 512-token batches, with room for the quantized inputs,
     * attention scratch and the arenas' alignment */
    p.act = 512ull * widths * 4 * 3 / 2 + (16ull << 20);
    p.embd = dev_bytes(eng_weight_bytes(&em->tok_embd));
    p.head = dev_bytes(eng_weight_bytes(&em->output_norm) + eng_weight_bytes(&em->output));
    p.logits = 3ull * 16 * cfg->n_vocab * 4;

    /* layer counts per listed device: the CPU's share of a list, or L - ngl in front */
    uint32_t count[RT_MAX_DEVS] = {0};
    int cpu_idx = -1;
    for (uint32_t i = 0; i < nd; i++)
        if (!is_vulkan(rt->devs[i])) cpu_idx = (int)i;
    uint32_t cpu_front = 0;
    if (n_vk == 0) {
        count[0] = L;
    } else if (ngl_set) {
        float wv[RT_MAX_DEVS];
        for (uint32_t i = 0; i < nd; i++)
            wv[i] = is_vulkan(rt->devs[i]) ? w[i] : 0.0f;
        double sv = 0;
        for (uint32_t i = 0; i < nd; i++)
            sv += wv[i];
        if (!(sv > 0)) /* the shares named only the CPU: the GPUs' layers evenly */
            for (uint32_t i = 0; i < nd; i++)
                wv[i] = is_vulkan(rt->devs[i]) ? 1.0f : 0.0f;
        /* the GPU layers are the last ngl: shares over them, the rest to the CPU */
        uint32_t gcount[RT_MAX_DEVS];
        share_out(ngl, wv, nd, gcount);
        for (uint32_t i = 0; i < nd; i++)
            count[i] = gcount[i];
        if (cpu_idx >= 0)
            count[cpu_idx] += L - ngl;
        else
            cpu_front = L - ngl;
    } else {
        share_out(L, w, nd, count);
    }

    /* memory: each Vulkan device keeps what its room holds, in list order. The embedding
     * goes with the first device's layers and the head with the last's where they fit;
     * when they keep a device from holding its layers they move to the CPU first (cheap to
     * run there: a row lookup; one product per output row), then layers do. */
    const bool head_rule = !ngl_set || ngl == L;
    bool embed_cpu = false, head_cpu = n_vk && ngl_set && ngl < L && cpu_idx < 0;
    uint32_t overflow = 0;
    for (uint32_t i = 0; i < nd; i++) {
        eng_backend *be = rt->devs[i];
        if (!is_vulkan(be)) continue;
        bool any_before = cpu_front > 0, any_after = false;
        for (uint32_t j = 0; j < i; j++)
            any_before = any_before || count[j] > 0;
        for (uint32_t j = i + 1; j < nd; j++)
            any_after = any_after || count[j] > 0;
        uint32_t l0 = cpu_front; /* its layers follow the devices' before it */
        for (uint32_t j = 0; j < i; j++)
            l0 += count[j];
        const uint32_t want = count[i] + overflow;
        if (want == 0) continue;
        const char *how = "";
        const uint64_t room = vk_dev_room(vk_backend_dev(be), &how);
        bool embed = !any_before && !embed_cpu, head = !any_after && head_rule && !head_cpu;
        uint32_t fits;
        uint64_t fixed;
        for (;;) {
            fixed = p.act;
            if (embed) fixed += p.embd;
            if (head) fixed += p.logits + (embed && em->tied_output ? 0 : p.head);
            fits = 0;
            uint64_t used = fixed;
            while (fits < want && l0 + fits < L && used + layer_need(&p, l0 + fits) <= room)
                used += layer_need(&p, l0 + fits), fits++;
            if (fits == want || !(embed || head)) break;
            if (embed)
                embed = false, embed_cpu = true;
            else
                head = false, head_cpu = true;
        }
        if (fits == 0) {
            const uint64_t one = layer_need(&p, l0 < L ? l0 : 0);
            return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                             "%s: %.1f MiB of room (%s) holds no layer: one needs %.1f MiB "
                             "(its weights and a KV cache of %u tokens) beside %.1f MiB for "
                             "a context's activations; give it more memory, a smaller context, "
                             "or fewer GPU layers (-ngl 0: all on the CPU)",
                             rt->dev_names[i], mib(room), how, mib(one), hint, mib(fixed));
        }
        if (fits < want || embed_cpu || head_cpu)
            rt_log(rt, VKLLM_LOG_INFO,
                   "placement: %s has %.1f MiB of room (%s): %u of the %u layers asked for "
                   "fit%s%s",
                   rt->dev_names[i], mib(room), how, fits, want,
                   embed_cpu ? ", the embedding on the CPU" : "",
                   head_cpu && head_rule ? ", the head on the CPU" : "");
        overflow = want - fits;
        count[i] = fits;
    }
    /* what no Vulkan device holds goes to the CPU: its listed share, or in front */
    if (overflow) {
        if (cpu_idx >= 0)
            count[cpu_idx] += overflow;
        else
            cpu_front += overflow;
    }
    /* the layers moved off the GPUs: llama.cpp's rule puts the head on the CPU then only
     * for -ngl; a placement by memory keeps it where it fits */
    eng_backend *cpu = NULL;
    const bool cpu_tail = head_cpu && cpu_idx < 0;
    if (cpu_front > 0 || embed_cpu || cpu_tail) {
        vkllm_status st = rt_cpu_backend(rt, &cpu, err);
        if (st != VKLLM_OK) return st;
    }
    eng_split_stage st[ENG_SPLIT_MAX];
    const uint32_t n = make_stages(&p, cpu_front, embed_cpu, count, cpu_tail, cpu, st);

    char where[512];
    eng_split_describe(st, n, where, sizeof where);
    if (n == 1) {
        m->be = st[0].be;
        vkllm_status s = m->be->vt->model_attach(m->be, em, err);
        if (s == VKLLM_OK && nd > 1) rt_log(rt, VKLLM_LOG_INFO, "placement: %s", where);
        return s;
    }
    vkllm_status s = eng_split_create(rt->alloc, em, st, n, &m->split, err);
    if (s != VKLLM_OK) return s;
    if ((s = m->split->vt->model_attach(m->split, em, err)) != VKLLM_OK) {
        m->split->vt->destroy(m->split);
        m->split = NULL;
        return s;
    }
    m->be = m->split;
    const eng_model *views;
    eng_split_stages(m->split, NULL, &views);
    char bytes[256] = "";
    size_t len = 0;
    for (uint32_t i = 0; i < n && len < sizeof bytes; i++) {
        int k = snprintf(bytes + len, sizeof bytes - len, "%s%s %.1f MiB", i ? ", " : "",
                         st[i].device, mib(views[i].weight_bytes));
        if (k < 0) break;
        len += (size_t)k;
    }
    rt_log(rt, VKLLM_LOG_INFO, "placement: %s; weights: %s", where, bytes);
    return VKLLM_OK;
}

vkllm_status vkllm_model_placement(const vkllm_model *m, vkllm_placement *out, size_t cap,
                                   size_t *n_out) {
    if (!m) return VKLLM_ERR_INVALID_ARG;
    const uint32_t want = out && cap ? out[0].struct_size : 0;
    if (want && want < sizeof(uint32_t)) return VKLLM_ERR_INVALID_ARG;
    const size_t align = _Alignof(vkllm_placement);
    const size_t stride = want ? want : (API_V0_vkllm_placement + align - 1) / align * align;
    const eng_split_stage *st = NULL;
    const eng_model *views = NULL;
    uint32_t n = m->split ? eng_split_stages(m->split, &st, &views) : 0;
    eng_split_stage one;
    if (!n && !m->vocab_only && m->be) {
        one = (eng_split_stage){
            .be = m->be, .l0 = 0, .l1 = m->cfg.n_layer, .embed = true, .head = true};
        snprintf(one.device, sizeof one.device, "%s",
                 m->be == m->rt->cpu ? "cpu" : m->rt->dev_names[0]);
        for (uint32_t i = 0; i < m->rt->n_devs; i++)
            if (m->rt->devs[i] == m->be)
                snprintf(one.device, sizeof one.device, "%s", m->rt->dev_names[i]);
        st = &one;
        views = &m->em;
        n = 1;
    }
    for (uint32_t i = 0; i < n && i < cap; i++) {
        vkllm_placement p = {0};
        snprintf(p.device, sizeof p.device, "%s", st[i].device);
        snprintf(p.name, sizeof p.name, "%s", st[i].be->info.name);
        p.layer0 = st[i].l0;
        p.n_layers = st[i].l1 - st[i].l0;
        p.embedding = st[i].embed;
        p.output = st[i].head;
        p.weight_bytes = views[i].weight_bytes;
        p.device_bytes = st[i].be->vt->held(st[i].be);
        char *dst = (char *)out + i * stride;
        memcpy(dst, &want, sizeof want);
        API_OUT(vkllm_placement, dst, &p);
    }
    if (n_out) *n_out = n;
    return VKLLM_OK;
}
