/* Compute pipelines from the embedded SPIR-V, and the pipeline cache kept on disk.
 *
 * The cache file lives in the user's cache folder ($VKLLM_CACHE, else $XDG_CACHE_HOME/vkllm,
 * else ~/.cache/vkllm), under pipelines/, named after the device's pipeline-cache UUID, vendor,
 * device and driver version, so a driver update starts a new file. Our own header (magic,
 * length, FNV-1a checksum) wraps the driver's blob: drivers are not required to survive a
 * corrupt blob, so a file that fails our checks or the driver's header check is never handed
 * to the driver; it is ignored with a notice and overwritten on exit.
 */
#include "vk/vk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PC_MAGIC "VKLLMPC1"
#define PC_HDR 24 /* magic[8], u64 length, u64 fnv1a */

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static bool cache_dir(char *out, size_t cap) {
    const char *c = getenv("VKLLM_CACHE");
    int n;
    if (c && *c) {
        n = snprintf(out, cap, "%s/pipelines", c);
    } else if ((c = getenv("XDG_CACHE_HOME")) && *c) {
        n = snprintf(out, cap, "%s/vkllm/pipelines", c);
    } else if ((c = getenv("HOME")) && *c) {
        n = snprintf(out, cap, "%s/.cache/vkllm/pipelines", c);
    } else {
        return false;
    }
    return n > 0 && (size_t)n < cap;
}

/* mkdir -p */
static bool make_dirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        bool ok = mkdir(path, 0755) == 0 || errno == EEXIST;
        *p = '/';
        if (!ok) return false;
    }
    return mkdir(path, 0755) == 0 || errno == EEXIST;
}

vkllm_status vk_pipe_cache_open(vk_dev *d, core_err *err) {
    (void)err;
    VkPhysicalDeviceProperties p;
    d->fn.vkGetPhysicalDeviceProperties(d->pdev, &p);
    const char *off = getenv("VKLLM_PIPELINE_CACHE");
    char dir[400];
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    if (!(off && strcmp(off, "0") == 0) && cache_dir(dir, sizeof dir)) {
        char uuid[2 * VK_UUID_SIZE + 1];
        for (unsigned i = 0; i < VK_UUID_SIZE; i++)
            snprintf(uuid + 2 * i, 3, "%02x", p.pipelineCacheUUID[i]);
        snprintf(d->cache_path, sizeof d->cache_path, "%s/%s-%04x-%04x-%08x.bin", dir, uuid,
                 p.vendorID, p.deviceID, p.driverVersion);
        FILE *f = fopen(d->cache_path, "rb");
        if (f) {
            uint8_t hdr[PC_HDR];
            uint64_t len = 0, sum = 0;
            bool ok = fread(hdr, 1, PC_HDR, f) == PC_HDR && memcmp(hdr, PC_MAGIC, 8) == 0;
            if (ok) {
                memcpy(&len, hdr + 8, 8);
                memcpy(&sum, hdr + 16, 8);
                ok = len >= 32 && len < (1ull << 30);
            }
            if (ok && (blob = core_alloc(d->alloc, (size_t)len, 0)) != NULL) {
                ok = fread(blob, 1, (size_t)len, f) == len && fgetc(f) == EOF &&
                     fnv1a(blob, (size_t)len) == sum;
                /* the driver's own header: VkPipelineCacheHeaderVersionOne */
                uint32_t h[4];
                if (ok) memcpy(h, blob, sizeof h);
                ok = ok && h[0] >= 32 && h[1] == VK_PIPELINE_CACHE_HEADER_VERSION_ONE &&
                     h[2] == p.vendorID && h[3] == p.deviceID &&
                     memcmp(blob + 16, p.pipelineCacheUUID, VK_UUID_SIZE) == 0;
                blob_len = ok ? (size_t)len : 0;
            } else {
                ok = false;
            }
            fclose(f);
            if (!ok) {
                vk_log(d, VKLLM_LOG_WARN,
                       "pipeline cache %s is damaged or from another driver; ignoring it",
                       d->cache_path);
                blob_len = 0;
            }
        }
    }
    VkPipelineCacheCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
        .initialDataSize = blob_len,
        .pInitialData = blob_len ? blob : NULL,
    };
    VkResult r = d->t.vkCreatePipelineCache(d->dev, &ci, d->vkac, &d->pipe_cache);
    if (r != VK_SUCCESS && blob_len) { /* the driver refused the data after all */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = d->t.vkCreatePipelineCache(d->dev, &ci, d->vkac, &d->pipe_cache);
    }
    if (r != VK_SUCCESS) d->pipe_cache = VK_NULL_HANDLE;
    core_free(d->alloc, blob);
    if (blob_len)
        vk_log(d, VKLLM_LOG_INFO, "pipeline cache: %zu bytes from %s", blob_len, d->cache_path);
    return VKLLM_OK;
}

void vk_pipe_cache_save(vk_dev *d) {
    if (!d->pipe_cache || !d->cache_path[0]) return;
    size_t len = 0;
    if (d->t.vkGetPipelineCacheData(d->dev, d->pipe_cache, &len, NULL) != VK_SUCCESS || !len)
        return;
    uint8_t *buf = core_alloc(d->alloc, len + PC_HDR, 0);
    if (!buf) return;
    if (d->t.vkGetPipelineCacheData(d->dev, d->pipe_cache, &len, buf + PC_HDR) != VK_SUCCESS) {
        core_free(d->alloc, buf);
        return;
    }
    uint64_t l64 = len, sum = fnv1a(buf + PC_HDR, len);
    memcpy(buf, PC_MAGIC, 8);
    memcpy(buf + 8, &l64, 8);
    memcpy(buf + 16, &sum, 8);
    char dir[512], tmp[600];
    snprintf(dir, sizeof dir, "%s", d->cache_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", d->cache_path, (long)getpid());
    FILE *f = NULL;
    if (make_dirs(dir)) f = fopen(tmp, "wb");
    bool ok = f && fwrite(buf, 1, len + PC_HDR, f) == len + PC_HDR;
    if (f) ok = fclose(f) == 0 && ok;
    if (ok) ok = rename(tmp, d->cache_path) == 0; /* atomic: readers see old or new */
    if (!ok) {
        remove(tmp);
        vk_log(d, VKLLM_LOG_WARN, "pipeline cache: could not write %s", d->cache_path);
    }
    core_free(d->alloc, buf);
}

vkllm_status vk_pipe_create(vk_dev *d, const char *shader, uint32_t n_bindings,
                            const uint32_t local_size[3], const vk_spec *spec, vk_pipe *out,
                            core_err *err) {
    memset(out, 0, sizeof *out);
    const vk_shader_blob *blob = vk_shader_find(shader);
    if (!blob) return core_errf(err, VKLLM_ERR_INTERNAL, "shader '%s' is not embedded", shader);
    if (n_bindings > VK_MAX_BINDINGS)
        return core_errf(err, VKLLM_ERR_INTERNAL, "shader '%s': too many bindings", shader);
    out->name = blob->name;
    out->n_bindings = n_bindings;
    VkDescriptorSetLayoutBinding b[VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < n_bindings; i++)
        b[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    VkDescriptorSetLayoutCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = n_bindings,
        .pBindings = b,
    };
    VkResult r = d->t.vkCreateDescriptorSetLayout(d->dev, &dci, d->vkac, &out->dsl);
    VkPushConstantRange pcr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = VK_PUSH_BYTES};
    VkPipelineLayoutCreateInfo lci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &out->dsl,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &pcr,
    };
    if (r == VK_SUCCESS) r = d->t.vkCreatePipelineLayout(d->dev, &lci, d->vkac, &out->layout);
    VkShaderModule mod = VK_NULL_HANDLE;
    VkShaderModuleCreateInfo mci = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = *blob->size,
        .pCode = blob->code,
    };
    if (r == VK_SUCCESS) r = d->t.vkCreateShaderModule(d->dev, &mci, d->vkac, &mod);
    /* specialization: user constants 0..n-1, EXACT_FMA 99 (shaders/common.glsl), local size
     * 100..102; an entry for a constant a shader does not declare is ignored */
    VkSpecializationMapEntry me[12];
    uint32_t data[12], n = 0;
    for (uint32_t i = 0; spec && i < spec->n && i < 8; i++, n++) {
        me[n] = (VkSpecializationMapEntry){.constantID = i, .offset = n * 4, .size = 4};
        data[n] = spec->v[i];
    }
    me[n] = (VkSpecializationMapEntry){.constantID = 99, .offset = n * 4, .size = 4};
    data[n++] = d->fma_exact && !(spec && spec->plain_fma) ? 1u : 0u;
    for (uint32_t i = 0; i < 3; i++) {
        out->local_size[i] = local_size && local_size[i] ? local_size[i] : 1;
        if (!local_size || !local_size[i]) continue;
        me[n] = (VkSpecializationMapEntry){.constantID = 100 + i, .offset = n * 4, .size = 4};
        data[n++] = local_size[i];
    }
    VkSpecializationInfo si = {
        .mapEntryCount = n, .pMapEntries = me, .dataSize = n * 4, .pData = data};
    VkComputePipelineCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage =
            {
                .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = mod,
                .pName = "main",
                .pSpecializationInfo = n ? &si : NULL,
            },
        .layout = out->layout,
    };
    if (r == VK_SUCCESS)
        r = d->t.vkCreateComputePipelines(d->dev, d->pipe_cache, 1, &pci, d->vkac, &out->pipe);
    if (mod) d->t.vkDestroyShaderModule(d->dev, mod, d->vkac);
    if (r != VK_SUCCESS) {
        vk_pipe_destroy(d, out);
        return core_errf(err, VKLLM_ERR_DEVICE, "pipeline '%s': %s", shader, vk_result_str(r));
    }
    atomic_fetch_add(&d->pipes_built, 1);
    return vk_check_validation(d, err);
}

vkllm_status vk_pipe_defer(vk_dev *d, const char *shader, uint32_t n_bindings,
                           const uint32_t local_size[3], const vk_spec *spec, vk_pipe *out,
                           core_err *err) {
    (void)d;
    memset(out, 0, sizeof *out);
    const vk_shader_blob *blob = vk_shader_find(shader);
    if (!blob) return core_errf(err, VKLLM_ERR_INTERNAL, "shader '%s' is not embedded", shader);
    if (n_bindings > VK_MAX_BINDINGS || (spec && spec->n > 8))
        return core_errf(err, VKLLM_ERR_INTERNAL, "shader '%s': too many bindings or constants",
                         shader);
    out->name = blob->name;
    out->n_bindings = n_bindings;
    for (int i = 0; i < 3; i++)
        out->local_size[i] = local_size && local_size[i] ? local_size[i] : 1;
    if (spec) out->spec = *spec;
    return VKLLM_OK;
}

vkllm_status vk_pipe_ready(vk_dev *d, vk_pipe *p, core_err *err) {
    if (p->pipe) return VKLLM_OK;
    if (!p->name) return core_errf(err, VKLLM_ERR_INTERNAL, "dispatch of an unset pipeline");
    vk_pipe built;
    const vk_spec spec = p->spec;
    vkllm_status st = vk_pipe_create(d, p->name, p->n_bindings, p->local_size, &spec, &built, err);
    if (st != VKLLM_OK) return st;
    built.spec = spec;
    *p = built;
    return VKLLM_OK;
}

void vk_pipe_destroy(vk_dev *d, vk_pipe *p) {
    if (p->pipe) d->t.vkDestroyPipeline(d->dev, p->pipe, d->vkac);
    if (p->layout) d->t.vkDestroyPipelineLayout(d->dev, p->layout, d->vkac);
    if (p->dsl) d->t.vkDestroyDescriptorSetLayout(d->dev, p->dsl, d->vkac);
    memset(p, 0, sizeof *p);
}
