/* vkllm_runtime: allocator and log callbacks, the chosen backend, device listing, status text.
 * The only thread-local is the message of a vkllm_runtime_create that failed (there is no
 * object to hold it then). */
#include "api_abi.h"
#include "api_internal.h"
#include "cpu/cpu_backend.h"
#include "cpu/cpu_info.h"
#include "cpu/cpu_kernels.h"
#include "vk/vk.h"
#include "vk/vk_backend.h"
#include "vkllm_git.h" /* generated: VKLLM_GIT_COMMIT */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local core_err t_create_err;

const char *vkllm_status_str(vkllm_status st) {
    switch (st) {
    case VKLLM_OK:
        return "ok";
    case VKLLM_ERR_INVALID_ARG:
        return "invalid argument";
    case VKLLM_ERR_OUT_OF_MEMORY:
        return "out of memory";
    case VKLLM_ERR_IO:
        return "i/o error";
    case VKLLM_ERR_BAD_FILE:
        return "malformed model file";
    case VKLLM_ERR_UNSUPPORTED:
        return "unsupported";
    case VKLLM_ERR_CONTEXT_FULL:
        return "context full";
    case VKLLM_ERR_NO_DEVICE:
        return "no such device";
    case VKLLM_ERR_CANCELLED:
        return "cancelled";
    case VKLLM_ERR_DEVICE:
        return "device error";
    case VKLLM_ERR_BUFFER_TOO_SMALL:
        return "buffer too small";
    case VKLLM_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown status";
}

void rt_log(const vkllm_runtime *rt, vkllm_log_level level, const char *fmt, ...) {
    if (!rt || !rt->log || level < rt->log_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rt->log(rt->log_user, level, msg);
}

static void rt_log_cb(void *user, vkllm_log_level level, const char *msg) {
    rt_log(user, level, "%s", msg);
}

/* One device of the device string: "auto", "cpu", "vulkan", "vulkan:N", "vulkan:NAME" (alone:
 * the only one listed). auto takes the best Vulkan GPU; with none, or when the only Vulkan
 * device is a CPU implementation (lavapipe: our CPU path is faster on the same cores), the CPU
 * backend. Sets the name the runtime gives it. */
static vkllm_status make_device(vkllm_runtime *rt, const vkllm_runtime_desc *desc, const char *dev,
                                bool alone, eng_backend **out, char *name, core_err *err) {
    bool want_vk = strncmp(dev, "vulkan", 6) == 0 && (dev[6] == '\0' || dev[6] == ':');
    bool is_auto = strcmp(dev, "auto") == 0;
    vkllm_vulkan_device host_local;
    const vkllm_vulkan_device *host =
        desc->vk_device ? API_IN(vkllm_vulkan_device, desc->vk_device, &host_local) : NULL;
    if (host && !(is_auto || strcmp(dev, "vulkan") == 0))
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "device '%s' with vk_device: the host's "
                         "device is the device (give NULL, auto or vulkan)",
                         dev);
    if (host) want_vk = true, is_auto = false;
    if (!want_vk && !is_auto && strcmp(dev, "cpu") != 0)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "unknown device '%s' (expected auto, cpu, vulkan, vulkan:N or "
                         "vulkan:NAME)",
                         dev);
    if (is_auto && !alone)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "device 'auto' in a list: name each device (cpu, vulkan:N)");
    if (want_vk || is_auto) {
        vk_backend_desc vd = {
            .alloc = rt->alloc,
            .log = rt_log_cb,
            .log_user = rt,
            .select = want_vk ? dev : "vulkan",
            .max_tier = desc->vk_tier_plus1 - 1,
            .memory_cap = desc->memory_cap,
            .n_splits = rt->n_threads,
            .skip_cpu_devices = is_auto,
            .relaxed_products = desc->vk_relaxed_products,
            .host = host,
            .vkac = desc->vk_allocation_callbacks,
        };
        vkllm_status st = vk_backend_create(&vd, out, err);
        if (st == VKLLM_OK) snprintf(name, 32, "vulkan:%d", (*out)->info.index);
        if (st == VKLLM_OK || want_vk) return st;
        rt_log(rt, VKLLM_LOG_INFO, "device auto: %s; using the CPU backend", err->msg);
        core_err_clear(err);
    }
    cpu_backend_desc cd = rt->cpu_desc;
    if (!alone) cd.memory_cap = 0; /* beside Vulkan devices the CPU is the fallback */
    snprintf(name, 32, "cpu");
    return cpu_backend_create(&cd, out, err);
}

/* The device string, one device or a comma-separated list of them. */
static vkllm_status pick_backends(vkllm_runtime *rt, const vkllm_runtime_desc *desc,
                                  core_err *err) {
    const char *dev = desc->device;
    if (!dev || !*dev) dev = desc->vk_device ? "vulkan" : "auto";
    if (desc->vk_tier_plus1 < 0 || desc->vk_tier_plus1 > VK_TIER_COUNT)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vk tier %d out of range [0, %d]",
                         desc->vk_tier_plus1 - 1, VK_TIER_COUNT - 1);
    cpu_kern_isa isa;
    if (!cpu_kern_isa_parse(desc->cpu_isa ? desc->cpu_isa : "auto", &isa))
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "unknown CPU kernel set '%s' (expected auto, scalar, avx2, avx512 or "
                         "avx512vnni)",
                         desc->cpu_isa);
    rt->cpu_desc = (cpu_backend_desc){
        .alloc = rt->alloc, .n_threads = rt->n_threads, .isa = isa, .memory_cap = desc->memory_cap};
    const bool list = strchr(dev, ',') != NULL;
    uint32_t n_vk = 0;
    for (const char *p = dev;;) {
        const char *comma = strchr(p, ',');
        const size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[128];
        if (len == 0 || len >= sizeof one)
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "device list '%s': %s entry (expected e.g. vulkan:0,vulkan:1,cpu)",
                             dev, len ? "an over-long" : "an empty");
        if (rt->n_devs == RT_MAX_DEVS)
            return core_errf(err, VKLLM_ERR_INVALID_ARG, "device list '%s': more than %d devices",
                             dev, RT_MAX_DEVS);
        memcpy(one, p, len);
        one[len] = '\0';
        const uint32_t i = rt->n_devs;
        vkllm_status st = make_device(rt, desc, one, !list, &rt->devs[i], rt->dev_names[i], err);
        if (st != VKLLM_OK) {
            if (list) {
                char msg[CORE_ERR_LEN];
                snprintf(msg, sizeof msg, "%s", err->msg);
                core_errf(err, st, "device %u of '%s' (%s): %s", i, dev, one, msg);
            }
            return st;
        }
        rt->n_devs++;
        if (strcmp(rt->dev_names[i], "cpu") == 0) {
            if (rt->cpu)
                return core_errf(err, VKLLM_ERR_INVALID_ARG, "device list '%s': cpu listed twice",
                                 dev);
            rt->cpu = rt->devs[i];
        } else {
            n_vk++;
        }
        if (!comma) break;
        p = comma + 1;
    }
    if (list && desc->vk_device && n_vk > 1)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "device list '%s' with vk_device: the host's device is the only Vulkan "
                         "device",
                         dev);
    rt->backend = rt->devs[0];
    size_t len = 0;
    for (uint32_t i = 0; i < rt->n_devs && len < sizeof rt->name; i++) {
        const int k = snprintf(rt->name + len, sizeof rt->name - len, "%s%s", i ? " + " : "",
                               rt->devs[i]->name);
        if (k < 0) break;
        len += (size_t)k;
    }
    return VKLLM_OK;
}

vkllm_status rt_cpu_backend(vkllm_runtime *rt, eng_backend **out, core_err *err) {
    if (!rt->cpu) {
        cpu_backend_desc cd = rt->cpu_desc;
        cd.memory_cap = 0; /* the fallback of a Vulkan runtime */
        vkllm_status st = cpu_backend_create(&cd, &rt->cpu, err);
        if (st != VKLLM_OK) return st;
        rt->cpu_owned = true;
        rt_log(rt, VKLLM_LOG_INFO, "partial offload: %s beside %s", rt->cpu->name,
               rt->backend->name);
    }
    *out = rt->cpu;
    return VKLLM_OK;
}

vkllm_status vkllm_runtime_create(const vkllm_runtime_desc *user_desc, vkllm_runtime **out) {
    vkllm_runtime_desc local;
    const vkllm_runtime_desc *desc = API_IN(vkllm_runtime_desc, user_desc, &local);
    if (!out) return core_errf(&t_create_err, VKLLM_ERR_INVALID_ARG, "runtime: out is NULL");
    *out = NULL;
    if ((desc->allocator.alloc == NULL) != (desc->allocator.free == NULL))
        return core_errf(&t_create_err, VKLLM_ERR_INVALID_ARG,
                         "runtime: allocator needs both alloc and free, or neither");
    if (desc->n_threads < 0 || desc->n_threads > 1024)
        return core_errf(&t_create_err, VKLLM_ERR_INVALID_ARG,
                         "runtime: n_threads %d out of range [0, 1024]", desc->n_threads);
    const vkllm_allocator *a = desc->allocator.alloc ? &desc->allocator : NULL;
    vkllm_runtime *rt = core_calloc(a, 1, sizeof *rt);
    if (!rt) return core_errf(&t_create_err, VKLLM_ERR_OUT_OF_MEMORY, "runtime: out of memory");
    rt->alloc_store = desc->allocator;
    rt->alloc = a ? &rt->alloc_store : NULL;
    rt->log = desc->log;
    rt->log_user = desc->log_user;
    rt->log_level = desc->log_level == VKLLM_LOG_DEFAULT ? VKLLM_LOG_WARN : desc->log_level;
    rt->n_threads = desc->n_threads ? desc->n_threads : cpu_info_n_cores();
    vkllm_status st = pick_backends(rt, desc, &t_create_err);
    if (st != VKLLM_OK) {
        for (uint32_t i = 0; i < rt->n_devs; i++)
            rt->devs[i]->vt->destroy(rt->devs[i]);
        core_free(rt->alloc, rt);
        return st;
    }
    pthread_mutex_init(&rt->be_mu, NULL);
    rt_log(rt, VKLLM_LOG_INFO, "backend: %s", rt->name);
    *out = rt;
    return VKLLM_OK;
}

void vkllm_runtime_destroy(vkllm_runtime *rt) {
    if (!rt) return;
    for (uint32_t i = 0; i < rt->n_devs; i++)
        rt->devs[i]->vt->destroy(rt->devs[i]);
    if (rt->cpu_owned) rt->cpu->vt->destroy(rt->cpu);
    pthread_mutex_destroy(&rt->be_mu);
    core_free(rt->alloc, rt);
}

const char *vkllm_runtime_last_error(const vkllm_runtime *rt) {
    return rt ? rt->err.msg : t_create_err.msg;
}

const char *vkllm_runtime_backend_name(const vkllm_runtime *rt) {
    return rt && rt->backend ? rt->name : "";
}

void vkllm_runtime_device(const vkllm_runtime *rt, vkllm_device_info *out) {
    if (!out) return;
    vkllm_device_info info = {0};
    if (rt && rt->backend) info = rt->backend->info;
    API_OUT(vkllm_device_info, out, &info);
}

#define VKLLM_STR2(x) #x
#define VKLLM_STR(x) VKLLM_STR2(x)

uint32_t vkllm_version(void) {
    return VKLLM_VERSION;
}

const char *vkllm_version_string(void) {
    return VKLLM_STR(VKLLM_VERSION_MAJOR) "." VKLLM_STR(VKLLM_VERSION_MINOR) "." VKLLM_STR(
        VKLLM_VERSION_PATCH) " (git " VKLLM_GIT_COMMIT ")";
}

/* infos is an array of the caller's struct: its stride is the caller's struct_size (that of
 * infos[0]; 0 = the v0 size), which every element gets. */
vkllm_status vkllm_list_devices(vkllm_device_info *infos, size_t cap, size_t *n_out) {
    size_t n = 0;
    const uint32_t want = infos && cap ? infos[0].struct_size : 0;
    if (want && want < sizeof(uint32_t)) return VKLLM_ERR_INVALID_ARG;
    /* an array of v0 structs is sizeof of that struct apart: its size rounded up to the
     * alignment; a caller's element may be at any byte offset, so it is written as bytes */
    const size_t align = _Alignof(vkllm_device_info);
    const size_t stride = want ? want : (API_V0_vkllm_device_info + align - 1) / align * align;
    vkllm_device_info info;
    if (infos && n < cap) {
        cpu_info_device(&info);
        snprintf(info.driver, sizeof info.driver, "%d cores", cpu_info_n_cores());
        char *dst = (char *)infos + n * stride;
        memcpy(dst, &want, sizeof want);
        API_OUT(vkllm_device_info, dst, &info);
    }
    n++;
    vk_dev_info vi[16];
    uint32_t nv = 0;
    core_err err;
    if (vk_enumerate(vi, 16, &nv, &err) == VKLLM_OK) {
        for (uint32_t i = 0; i < nv && i < 16; i++, n++) {
            if (!infos || n >= cap) continue;
            vk_dev_info_public(&vi[i], (int)i, vi[i].tier, &info);
            char *dst = (char *)infos + n * stride;
            memcpy(dst, &want, sizeof want);
            API_OUT(vkllm_device_info, dst, &info);
        }
    }
    if (n_out) *n_out = n;
    return VKLLM_OK;
}
