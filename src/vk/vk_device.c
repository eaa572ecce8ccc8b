/* Vulkan instance and device: loader (volk), enumeration with capability tiers, device choice,
 * logical device with the features of the chosen tier, the validation layer and its messenger.
 *
 * Validation: VKLLM_VK_VALIDATION=1 in the environment enables VK_LAYER_KHRONOS_validation and
 * a messenger that records every warning or error; vk_check_validation turns a recorded
 * message into a failed run, so a test fails on the first message instead of scrolling past.
 * Asking for validation without the layer installed is an error, not a silent skip.
 */
#include "vk/vk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vk_log(const vk_dev *d, vkllm_log_level level, const char *fmt, ...) {
    if (!d || !d->log) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    d->log(d->log_user, level, msg);
}

const char *vk_result_str(VkResult r) {
    switch (r) {
    case VK_SUCCESS:
        return "VK_SUCCESS";
    case VK_NOT_READY:
        return "VK_NOT_READY";
    case VK_TIMEOUT:
        return "VK_TIMEOUT";
    case VK_INCOMPLETE:
        return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY:
        return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
        return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED:
        return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST:
        return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_LAYER_NOT_PRESENT:
        return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT:
        return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT:
        return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER:
        return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS:
        return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_OUT_OF_POOL_MEMORY:
        return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default:
        return "VkResult(other)";
    }
}

static bool want_validation(void) {
    const char *v = getenv("VKLLM_VK_VALIDATION");
    return v && *v && strcmp(v, "0") != 0;
}

static bool has_layer(const vk_ifn *f, const char *name) {
    uint32_t n = 0;
    if (f->vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return false;
    VkLayerProperties *p = calloc(n, sizeof *p);
    if (!p) return false;
    bool found = false;
    if (f->vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (strcmp(p[i].layerName, name) == 0) found = true;
    free(p);
    return found;
}

static bool has_instance_ext(const vk_ifn *f, const char *name) {
    uint32_t n = 0;
    if (f->vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    if (!p) return false;
    bool found = false;
    if (f->vkEnumerateInstanceExtensionProperties(NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (strcmp(p[i].extensionName, name) == 0) found = true;
    free(p);
    return found;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *cb,
                                                 void *user) {
    (void)type;
    vk_dev *d = user;
    const char *msg = cb && cb->pMessage ? cb->pMessage : "(no text)";
    if (atomic_fetch_add(&d->val.n_messages, 1) == 0)
        snprintf(d->val.first, sizeof d->val.first, "%s", msg);
    vk_log(d,
           sev >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? VKLLM_LOG_ERROR : VKLLM_LOG_WARN,
           "vulkan validation: %s", msg);
    return VK_FALSE;
}

static vkllm_status instance_create(vk_dev *d, bool validation, core_err *err) {
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "vkllm",
        .pEngineName = "vkllm",
        .apiVersion = VK_API_VERSION_1_3,
    };
    /* an instance of 1.0 cannot use 1.1 devices: ask for 1.1 at least; loaders older than 1.1
     * report 1.0 here and are refused */
    uint32_t loader_ver = VK_API_VERSION_1_0;
    if (d->fn.vkEnumerateInstanceVersion) d->fn.vkEnumerateInstanceVersion(&loader_ver);
    if (loader_ver < VK_API_VERSION_1_1)
        return core_errf(err, VKLLM_ERR_NO_DEVICE, "the Vulkan loader is 1.0; vkllm needs 1.1");
    if (loader_ver < VK_API_VERSION_1_3) app.apiVersion = loader_ver;
    const char *layers[1] = {"VK_LAYER_KHRONOS_validation"};
    const char *exts[2];
    uint32_t n_ext = 0;
    if (validation) {
        if (!has_layer(&d->fn, layers[0]))
            return core_errf(err, VKLLM_ERR_NO_DEVICE,
                             "VKLLM_VK_VALIDATION is set but VK_LAYER_KHRONOS_validation is not "
                             "installed (Debian: vulkan-validationlayers)");
        if (!has_instance_ext(&d->fn, VK_EXT_DEBUG_UTILS_EXTENSION_NAME))
            return core_errf(err, VKLLM_ERR_NO_DEVICE,
                             "VKLLM_VK_VALIDATION is set but VK_EXT_debug_utils is missing");
        exts[n_ext++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    }
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pApplicationInfo = &app,
        .enabledLayerCount = validation ? 1 : 0,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = n_ext,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = d->fn.vkCreateInstance(&ci, d->vkac, &d->instance);
    if (r != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_NO_DEVICE, "vkCreateInstance failed: %s", vk_result_str(r));
    d->own_instance = true;
    char msg[256];
    if (!vk_fn_load_instance(&d->fn, d->instance, msg, sizeof msg))
        return core_errf(err, VKLLM_ERR_NO_DEVICE, "%s", msg);
    if (validation && !d->fn.vkCreateDebugUtilsMessengerEXT)
        return core_errf(err, VKLLM_ERR_NO_DEVICE, "VK_EXT_debug_utils has no entry points");
    if (validation) {
        VkDebugUtilsMessengerCreateInfoEXT mi = {
            .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
            .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
            .pfnUserCallback = on_message,
            .pUserData = d,
        };
        r = d->fn.vkCreateDebugUtilsMessengerEXT(d->instance, &mi, d->vkac, &d->messenger);
        if (r != VK_SUCCESS)
            return core_errf(err, VKLLM_ERR_NO_DEVICE, "debug messenger: %s", vk_result_str(r));
        d->val.enabled = true;
    }
    return VKLLM_OK;
}

static bool dev_has_ext(const vk_ifn *f, VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    if (f->vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    if (!p) return false;
    bool found = false;
    if (f->vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (strcmp(p[i].extensionName, name) == 0) found = true;
    free(p);
    return found;
}

static const char *vendor_name(uint32_t id) {
    switch (id) {
    case 0x1002:
        return "AMD";
    case 0x10DE:
        return "NVIDIA";
    case 0x8086:
        return "Intel";
    case 0x13B5:
        return "ARM";
    case 0x5143:
        return "Qualcomm";
    case 0x1010:
        return "ImgTec";
    case 0x106B:
        return "Apple";
    case 0x10005:
        return "Mesa";
    default:
        return "unknown";
    }
}

/* The feature structs a tier needs, chained for vkGetPhysicalDeviceFeatures2 and reused to
 * enable them in vkCreateDevice. */
typedef struct feat_chain {
    VkPhysicalDeviceFeatures2 f2;
    VkPhysicalDevice16BitStorageFeatures s16;
    VkPhysicalDevice8BitStorageFeatures s8;
    VkPhysicalDeviceShaderFloat16Int8Features f16i8;
    VkPhysicalDeviceShaderIntegerDotProductFeatures idot;
} feat_chain;

static void feat_chain_init(feat_chain *c, bool with_idot) {
    memset(c, 0, sizeof *c);
    c->f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    c->s16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
    c->s8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES;
    c->f16i8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
    c->idot.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES;
    c->f2.pNext = &c->s16;
    c->s16.pNext = &c->s8;
    c->s8.pNext = &c->f16i8;
    c->f16i8.pNext = with_idot ? &c->idot : NULL;
}

static bool ver_or_ext(const vk_ifn *f, uint32_t api, uint32_t core_ver, VkPhysicalDevice pd,
                       const char *ext) {
    return api >= core_ver || dev_has_ext(f, pd, ext);
}

static void read_info(const vk_ifn *f, VkPhysicalDevice pd, vk_dev_info *o) {
    memset(o, 0, sizeof *o);
    VkPhysicalDeviceProperties p;
    f->vkGetPhysicalDeviceProperties(pd, &p);
    const uint32_t api = p.apiVersion;
    VkPhysicalDeviceSubgroupProperties sg = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceIDProperties idp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                      .pNext = &sg};
    sg.pNext = &idp;
    const bool has_drv = ver_or_ext(f, api, VK_API_VERSION_1_2, pd, "VK_KHR_driver_properties");
    if (has_drv) idp.pNext = &drv;
    f->vkGetPhysicalDeviceProperties2(pd, &p2);

    snprintf(o->name, sizeof o->name, "%s", p.deviceName);
    static const char *kinds[] = {"other", "integrated-gpu", "discrete-gpu", "virtual-gpu",
                                  "cpu-vulkan"};
    static const int rank[] = {4, 1, 0, 2, 3};
    const uint32_t ty = p.deviceType <= VK_PHYSICAL_DEVICE_TYPE_CPU ? p.deviceType : 0;
    snprintf(o->kind, sizeof o->kind, "%s", kinds[ty]);
    o->rank = rank[ty];
    o->vendor_id = p.vendorID;
    o->device_id = p.deviceID;
    snprintf(o->vendor, sizeof o->vendor, "%s", vendor_name(p.vendorID));
    o->api_version = api;
    o->driver_version = p.driverVersion;
    memcpy(o->uuid, idp.deviceUUID, VK_UUID_SIZE);
    if (has_drv)
        snprintf(o->driver, sizeof o->driver, "%.60s %.60s", drv.driverName, drv.driverInfo);
    else
        snprintf(o->driver, sizeof o->driver, "driver 0x%x", p.driverVersion);
    o->subgroup_size = sg.subgroupSize;
    o->max_buffer_range = p.limits.maxStorageBufferRange;
    o->max_shared = p.limits.maxComputeSharedMemorySize;
    o->max_wg_invocations = p.limits.maxComputeWorkGroupInvocations;
    o->min_ssbo_align = (uint32_t)p.limits.minStorageBufferOffsetAlignment;

    VkPhysicalDeviceMemoryProperties mp;
    f->vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    for (uint32_t i = 0; i < mp.memoryHeapCount; i++)
        if ((mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            mp.memoryHeaps[i].size > o->device_local_bytes)
            o->device_local_bytes = mp.memoryHeaps[i].size;

    const bool idot_ok = ver_or_ext(f, api, VK_API_VERSION_1_3, pd,
                                    VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
    feat_chain fc;
    feat_chain_init(&fc, idot_ok);
    f->vkGetPhysicalDeviceFeatures2(pd, &fc.f2);
    const bool f16i8_ok =
        ver_or_ext(f, api, VK_API_VERSION_1_2, pd, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME);
    const bool s8_ok =
        ver_or_ext(f, api, VK_API_VERSION_1_2, pd, VK_KHR_8BIT_STORAGE_EXTENSION_NAME);
    o->fp16 = f16i8_ok && fc.f16i8.shaderFloat16;
    o->int8 = f16i8_ok && fc.f16i8.shaderInt8;
    o->storage16 = fc.s16.storageBuffer16BitAccess;
    o->storage8 = s8_ok && fc.s8.storageBuffer8BitAccess;
    const VkSubgroupFeatureFlags need =
        VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    o->subgroup_arith = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                        (sg.supportedOperations & need) == need;
    o->int_dot = idot_ok && fc.idot.shaderIntegerDotProduct;
    o->tier = VK_TIER0;
    if (o->fp16 && o->int8 && o->storage16 && o->storage8 && o->subgroup_arith) {
        o->tier = VK_TIER1;
        if (o->int_dot) o->tier = VK_TIER2;
    }
    int n = snprintf(o->features, sizeof o->features, "tier%d", o->tier);
    const struct {
        bool on;
        const char *name;
    } fl[] = {
        {o->fp16, "fp16"},
        {o->int8, "int8"},
        {o->storage16, "storage16"},
        {o->storage8, "storage8"},
        {o->subgroup_arith, "subgroup-arith"},
        {o->int_dot, "int-dot"},
    };
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++)
        if (fl[i].on && n > 0 && (size_t)n < sizeof o->features)
            n += snprintf(o->features + n, sizeof o->features - (size_t)n, " %s", fl[i].name);
}

/* Sorts by rank (discrete first), keeping the driver's order within a rank. */
static void sort_infos(vk_dev_info *v, VkPhysicalDevice *pd, uint32_t n) {
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i; j > 0 && v[j].rank < v[j - 1].rank; j--) {
            vk_dev_info t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
            VkPhysicalDevice tp = pd[j];
            pd[j] = pd[j - 1];
            pd[j - 1] = tp;
        }
}

vkllm_status vk_list_pdevs(const vk_ifn *f, VkInstance inst, VkPhysicalDevice *pd,
                           vk_dev_info *info, uint32_t *n, core_err *err) {
    uint32_t cnt = VK_MAX_PDEV;
    VkResult r = f->vkEnumeratePhysicalDevices(inst, &cnt, pd);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE)
        return core_errf(err, VKLLM_ERR_NO_DEVICE, "vkEnumeratePhysicalDevices: %s",
                         vk_result_str(r));
    uint32_t k = 0;
    for (uint32_t i = 0; i < cnt; i++) {
        VkPhysicalDeviceProperties p;
        f->vkGetPhysicalDeviceProperties(pd[i], &p);
        if (p.apiVersion < VK_API_VERSION_1_1) continue; /* we need 1.1 core */
        pd[k] = pd[i];
        read_info(f, pd[k], &info[k]);
        k++;
    }
    sort_infos(info, pd, k);
    *n = k;
    return VKLLM_OK;
}

vkllm_status vk_enumerate(vk_dev_info *out, uint32_t cap, uint32_t *n, core_err *err) {
    *n = 0;
    vk_dev tmp = {0};
    if (!vk_fn_open(&tmp.fn, NULL, err->msg, sizeof err->msg)) return VKLLM_ERR_NO_DEVICE;
    vkllm_status st = instance_create(&tmp, false, err);
    VkPhysicalDevice pd[VK_MAX_PDEV];
    vk_dev_info info[VK_MAX_PDEV];
    uint32_t cnt = 0;
    if (st == VKLLM_OK) st = vk_list_pdevs(&tmp.fn, tmp.instance, pd, info, &cnt, err);
    for (uint32_t i = 0; i < cnt && i < cap; i++)
        out[i] = info[i];
    *n = cnt;
    if (tmp.instance && tmp.fn.vkDestroyInstance) tmp.fn.vkDestroyInstance(tmp.instance, NULL);
    vk_fn_close(&tmp.fn);
    return st;
}

/* "vulkan" = best; "vulkan:N" = Nth in our order; "vulkan:NAME" = first whose name contains
 * NAME (case-sensitive). */
static vkllm_status pick(const char *sel, const vk_dev_info *info, uint32_t n, uint32_t *idx,
                         core_err *err) {
    if (n == 0) return core_errf(err, VKLLM_ERR_NO_DEVICE, "no Vulkan 1.1 device found");
    const char *arg = sel ? strchr(sel, ':') : NULL;
    if (!arg || !arg[1]) {
        *idx = 0;
        return VKLLM_OK;
    }
    arg++;
    char *end;
    unsigned long v = strtoul(arg, &end, 10);
    if (*end == '\0') {
        if (v >= n)
            return core_errf(err, VKLLM_ERR_NO_DEVICE,
                             "device 'vulkan:%lu': only %u Vulkan device%s (see vkllm devices)", v,
                             n, n == 1 ? "" : "s");
        *idx = (uint32_t)v;
        return VKLLM_OK;
    }
    for (uint32_t i = 0; i < n; i++)
        if (strstr(info[i].name, arg)) {
            *idx = i;
            return VKLLM_OK;
        }
    return core_errf(err, VKLLM_ERR_NO_DEVICE,
                     "device 'vulkan:%s': no Vulkan device name contains '%s' (see vkllm devices)",
                     arg, arg);
}

static uint32_t find_mem_type(const VkPhysicalDeviceMemoryProperties *mp,
                              VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) {
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
        if ((f & want) == want && !(f & avoid)) return i;
    }
    return UINT32_MAX;
}

uint64_t vk_dev_room(vk_dev *d, const char **how) {
    const uint64_t used = atomic_load(&d->allocated);
    if (d->memory_cap) {
        *how = "the memory cap";
        return d->memory_cap > used ? d->memory_cap - used : 0;
    }
    VkPhysicalDeviceMemoryBudgetPropertiesEXT bud = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2};
    const bool budget = dev_has_ext(&d->fn, d->pdev, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    if (budget) mp2.pNext = &bud;
    d->fn.vkGetPhysicalDeviceMemoryProperties2(d->pdev, &mp2);
    const VkPhysicalDeviceMemoryProperties *mp = &mp2.memoryProperties;
    const uint32_t heap = d->mem_type_device < mp->memoryTypeCount
                              ? mp->memoryTypes[d->mem_type_device].heapIndex
                              : 0;
    if (budget) { /* heapUsage counts this runtime's memory too */
        *how = "VK_EXT_memory_budget";
        return bud.heapBudget[heap] > bud.heapUsage[heap]
                   ? bud.heapBudget[heap] - bud.heapUsage[heap]
                   : 0;
    }
    *how = "the heap size less a tenth";
    const uint64_t size = mp->memoryHeaps[heap].size;
    uint64_t margin = size / 10;
    if (margin < (256ull << 20)) margin = 256ull << 20;
    return size > margin + used ? size - margin - used : 0;
}

/* Memory types and the command pool for one-shot work, on a device of either origin. */
vkllm_status vk_dev_finish(vk_dev *d, core_err *err) {
    const vk_dev_info *in = &d->info;
    VkPhysicalDeviceMemoryProperties mp;
    d->fn.vkGetPhysicalDeviceMemoryProperties(d->pdev, &mp);
    d->mem_type_device = find_mem_type(&mp, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    /* readback and staging: host-visible, cached if possible (reads are much faster) */
    d->mem_type_host =
        find_mem_type(&mp,
                      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
                          VK_MEMORY_PROPERTY_HOST_CACHED_BIT,
                      0);
    if (d->mem_type_host == UINT32_MAX)
        d->mem_type_host = find_mem_type(
            &mp, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0);
    if (d->mem_type_device == UINT32_MAX) d->mem_type_device = d->mem_type_host;
    if (d->mem_type_host == UINT32_MAX)
        return core_errf(err, VKLLM_ERR_NO_DEVICE, "%s: no host-visible coherent memory", in->name);

    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = d->qfam,
    };
    VkResult r = d->t.vkCreateCommandPool(d->dev, &pci, d->vkac, &d->cmd_pool);
    if (r != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_DEVICE, "vkCreateCommandPool: %s", vk_result_str(r));
    return VKLLM_OK;
}

vkllm_status vk_dev_load(vk_dev *d, core_err *err) {
    char msg[256];
    if (!vk_fn_load_device(&d->fn, d->dev, &d->t, msg, sizeof msg))
        return core_errf(err, VKLLM_ERR_NO_DEVICE, "%s: %s", d->info.name, msg);
    return VKLLM_OK;
}

static vkllm_status device_create(vk_dev *d, core_err *err) {
    const vk_dev_info *in = &d->info;
    uint32_t nq = 0;
    d->fn.vkGetPhysicalDeviceQueueFamilyProperties(d->pdev, &nq, NULL);
    VkQueueFamilyProperties qf[16];
    if (nq > 16) nq = 16;
    d->fn.vkGetPhysicalDeviceQueueFamilyProperties(d->pdev, &nq, qf);
    /* a compute queue; prefer one without graphics: async compute on discrete GPUs, and work
     * that does not sit in the renderer's queue on any GPU */
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < nq; i++) {
        if (!(qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
        if (best == UINT32_MAX || !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) best = i;
    }
    if (best == UINT32_MAX)
        return core_errf(err, VKLLM_ERR_NO_DEVICE, "%s: no compute queue", in->name);
    d->qfam = best;

    const uint32_t api = in->api_version;
    const char *exts[8];
    uint32_t n_ext = 0;
    feat_chain fc;
    feat_chain_init(&fc, d->tier >= VK_TIER2);
    if (d->tier >= VK_TIER1) {
        fc.s16.storageBuffer16BitAccess = VK_TRUE;
        fc.s8.storageBuffer8BitAccess = VK_TRUE;
        fc.f16i8.shaderFloat16 = VK_TRUE;
        fc.f16i8.shaderInt8 = VK_TRUE;
        if (api < VK_API_VERSION_1_2) {
            exts[n_ext++] = VK_KHR_8BIT_STORAGE_EXTENSION_NAME;
            exts[n_ext++] = VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME;
        }
    } else {
        fc.f2.pNext = NULL; /* tier 0: core 1.1 features only */
    }
    if (d->tier >= VK_TIER2) {
        fc.idot.shaderIntegerDotProduct = VK_TRUE;
        if (api < VK_API_VERSION_1_3)
            exts[n_ext++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
    }
    /* A low global priority where the device offers it, so a desktop or a game on the same
     * GPU keeps its frames while vkllm works. The driver may refuse a priority (not
     * permitted): then the device is created without one. */
    const char *prio_ext = dev_has_ext(&d->fn, d->pdev, VK_KHR_GLOBAL_PRIORITY_EXTENSION_NAME)
                               ? VK_KHR_GLOBAL_PRIORITY_EXTENSION_NAME
                           : dev_has_ext(&d->fn, d->pdev, VK_EXT_GLOBAL_PRIORITY_EXTENSION_NAME)
                               ? VK_EXT_GLOBAL_PRIORITY_EXTENSION_NAME
                               : NULL;
    VkDeviceQueueGlobalPriorityCreateInfoKHR gp = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_GLOBAL_PRIORITY_CREATE_INFO_KHR,
        .globalPriority = VK_QUEUE_GLOBAL_PRIORITY_LOW_KHR,
    };
    const float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .pNext = prio_ext ? &gp : NULL,
        .queueFamilyIndex = best,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    if (prio_ext) exts[n_ext++] = prio_ext;
    VkDeviceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &fc.f2,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qci,
        .enabledExtensionCount = n_ext,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = d->fn.vkCreateDevice(d->pdev, &ci, d->vkac, &d->dev);
    if (r != VK_SUCCESS && prio_ext) {
        qci.pNext = NULL;
        ci.enabledExtensionCount = --n_ext;
        r = d->fn.vkCreateDevice(d->pdev, &ci, d->vkac, &d->dev);
        prio_ext = NULL;
    }
    if (r != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_NO_DEVICE, "%s: vkCreateDevice failed: %s", in->name,
                         vk_result_str(r));
    d->own_device = true;
    vk_log(d, VKLLM_LOG_INFO, "vulkan: %s, queue family %u%s, global priority %s", in->name, best,
           qf[best].queueFlags & VK_QUEUE_GRAPHICS_BIT ? " (graphics too)" : " (compute)",
           prio_ext ? "low" : "not offered");
    vkllm_status st = vk_dev_load(d, err);
    if (st != VKLLM_OK) return st;
    d->t.vkGetDeviceQueue(d->dev, best, 0, &d->queue);
    return vk_dev_finish(d, err);
}

/* Whether the device's fma() rounds once (decides EXACT_FMA for every pipeline): 1 + 2^-12 squared
 * minus 1 + 2^-11 is 2^-24 fused and 0 when the product is rounded first (a tie, to even). */
static vkllm_status probe_fma(vk_dev *d, bool *fused, core_err *err) {
    vk_pipe p = {0};
    vkllm_status st =
        vk_pipe_create(d, "attn_fma_probe_t0", 3, (uint32_t[3]){1, 1, 1}, NULL, &p, err);
    if (st != VKLLM_OK) return st;
    const float x[3] = {1.0f + 0x1p-12f, 1.0f + 0x1p-12f, -(1.0f + 0x1p-11f)};
    float o[9] = {0}; /* shaders/attn_fma_probe.comp: fma, emulated, exp, ... */
    vk_arena a;
    vk_arena_init(&a, d, false, 256, "fma probe");
    vk_slice xs = {0}, os = {0};
    st = vk_arena_alloc(&a, sizeof x, &xs, err);
    if (st == VKLLM_OK) st = vk_arena_alloc(&a, sizeof o, &os, err);
    if (st == VKLLM_OK) st = vk_upload(d, &xs, x, sizeof x, err);
    vk_rec r = {0};
    if (st == VKLLM_OK) st = vk_rec_init(d, &r, 1, err);
    if (st == VKLLM_OK) st = vk_rec_begin(&r, err);
    const uint32_t n = 1;
    const vk_slice b[3] = {xs, xs, os};
    if (st == VKLLM_OK) st = vk_rec_dispatch(&r, &p, b, 3, &n, sizeof n, 1, 1, 1, err);
    if (st == VKLLM_OK) st = vk_rec_end(&r, err);
    if (st == VKLLM_OK) {
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        VkFence f;
        if (d->t.vkCreateFence(d->dev, &fi, d->vkac, &f) != VK_SUCCESS) {
            st = core_errf(err, VKLLM_ERR_DEVICE, "vulkan: fence for the fma probe");
        } else {
            st = vk_rec_submit_wait(&r, f, err);
            d->t.vkDestroyFence(d->dev, f, d->vkac);
        }
    }
    vk_rec_free(&r);
    if (st == VKLLM_OK) st = vk_download(d, &os, o, sizeof o, err);
    vk_arena_free(&a);
    vk_pipe_destroy(d, &p);
    if (st != VKLLM_OK) return st;
    if (o[1] != 0x1p-24f)
        return core_errf(err, VKLLM_ERR_DEVICE, "vulkan: fma emulation gives %a for 0x1p-24",
                         (double)o[1]);
    *fused = o[0] == 0x1p-24f;
    return VKLLM_OK;
}

vkllm_status vk_dev_create(const vk_dev_desc *desc, vk_dev **out, core_err *err) {
    *out = NULL;
    vk_dev *d = core_calloc(desc->alloc, 1, sizeof *d);
    if (!d) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    d->alloc = desc->alloc;
    d->log = desc->log;
    d->log_user = desc->log_user;
    d->memory_cap = desc->memory_cap;
    d->vkac = desc->vkac;
    pthread_mutex_init(&d->queue_mu, NULL);
    pthread_mutex_init(&d->mu, NULL);
    const vkllm_vulkan_device *h = desc->host;
    PFN_vkGetInstanceProcAddr gipa = NULL;
    if (h && h->get_instance_proc_addr) /* the host's own type, back from the header's */
        gipa = (PFN_vkGetInstanceProcAddr)(void (*)(void))h->get_instance_proc_addr;
    vkllm_status st = VKLLM_OK;
    if (!vk_fn_open(&d->fn, gipa, err->msg, sizeof err->msg)) {
        st = VKLLM_ERR_NO_DEVICE;
        goto fail;
    }
    if (h) {
        if ((st = vk_host_attach(d, h, err)) != VKLLM_OK) goto fail;
        if (desc->max_tier >= 0 && desc->max_tier < d->tier) d->tier = desc->max_tier;
    } else {
        if ((st = instance_create(d, want_validation(), err)) != VKLLM_OK) goto fail;
        VkPhysicalDevice pd[VK_MAX_PDEV];
        vk_dev_info info[VK_MAX_PDEV];
        uint32_t n = 0, idx = 0;
        if ((st = vk_list_pdevs(&d->fn, d->instance, pd, info, &n, err)) != VKLLM_OK) goto fail;
        if ((st = pick(desc->select, info, n, &idx, err)) != VKLLM_OK) goto fail;
        d->pdev = pd[idx];
        d->info = info[idx];
        d->index = (int)idx;
        d->tier = d->info.tier;
        if (desc->max_tier >= 0 && desc->max_tier < d->tier) d->tier = desc->max_tier;
    }
    d->max_buffer = d->info.max_buffer_range;
    if (desc->max_buffer && desc->max_buffer < d->max_buffer) d->max_buffer = desc->max_buffer;
    d->max_buffer &= ~(uint64_t)255; /* keep sub-allocation offsets aligned */
    if (!h && (st = device_create(d, err)) != VKLLM_OK) goto fail;
    vk_pipe_cache_open(d, err); /* never fatal */
    core_err_clear(err);
    bool fused = true;
    if ((st = probe_fma(d, &fused, err)) != VKLLM_OK) goto fail;
    d->fma_exact = !fused;
    if (!fused)
        vk_log(d, VKLLM_LOG_INFO, "vulkan: fma() is not fused on %s: kernels emulate it",
               d->info.name);
    *out = d;
    return VKLLM_OK;
fail:
    vk_dev_destroy(d);
    return st;
}

void vk_dev_destroy(vk_dev *d) {
    if (!d) return;
    if (d->dev && d->t.vkDestroyDevice) {
        /* vkllm's own work is waited for where it was submitted (fences); on the host's device
         * only vkllm's objects go, and the host's work is left running */
        if (d->own_device) d->t.vkDeviceWaitIdle(d->dev); /* teardown only */
        vk_pipe_cache_save(d);
        if (d->pipe_cache) d->t.vkDestroyPipelineCache(d->dev, d->pipe_cache, d->vkac);
        if (d->cmd_pool) d->t.vkDestroyCommandPool(d->dev, d->cmd_pool, d->vkac);
        if (d->own_device) d->t.vkDestroyDevice(d->dev, d->vkac);
    }
    if (d->own_instance) {
        if (d->messenger && d->fn.vkDestroyDebugUtilsMessengerEXT)
            d->fn.vkDestroyDebugUtilsMessengerEXT(d->instance, d->messenger, d->vkac);
        if (d->fn.vkDestroyInstance) d->fn.vkDestroyInstance(d->instance, d->vkac);
    }
    vk_fn_close(&d->fn);
    pthread_mutex_destroy(&d->queue_mu);
    pthread_mutex_destroy(&d->mu);
    core_free(d->alloc, d);
}

vkllm_status vk_check_validation(vk_dev *d, core_err *err) {
    const unsigned n = atomic_load(&d->val.n_messages);
    if (n == 0) return VKLLM_OK;
    return core_errf(err, VKLLM_ERR_DEVICE, "Vulkan validation reported %u message%s; first: %s", n,
                     n == 1 ? "" : "s", d->val.first);
}

VkResult vk_queue_submit(vk_dev *d, const VkSubmitInfo *si, VkFence fence) {
    pthread_mutex_lock(&d->queue_mu);
    if (d->lock_queue) d->lock_queue(d->queue_user);
    VkResult r = d->t.vkQueueSubmit(d->queue, 1, si, fence);
    if (d->unlock_queue) d->unlock_queue(d->queue_user);
    pthread_mutex_unlock(&d->queue_mu);
    return r;
}

vkllm_status vk_oneshot_begin(vk_dev *d, VkCommandBuffer *cb, core_err *err) {
    pthread_mutex_lock(&d->mu);
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = d->cmd_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    VkResult r = d->t.vkAllocateCommandBuffers(d->dev, &ai, cb);
    if (r != VK_SUCCESS) {
        pthread_mutex_unlock(&d->mu);
        return core_errf(err, VKLLM_ERR_DEVICE, "vkAllocateCommandBuffers: %s", vk_result_str(r));
    }
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    d->t.vkBeginCommandBuffer(*cb, &bi);
    return VKLLM_OK;
}

vkllm_status vk_oneshot_end(vk_dev *d, VkCommandBuffer cb, core_err *err) {
    d->t.vkEndCommandBuffer(cb);
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkFence fence;
    VkResult r = d->t.vkCreateFence(d->dev, &fi, d->vkac, &fence);
    if (r == VK_SUCCESS) {
        VkSubmitInfo si = {
            .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
            .commandBufferCount = 1,
            .pCommandBuffers = &cb,
        };
        r = vk_queue_submit(d, &si, fence);
        if (r == VK_SUCCESS) r = d->t.vkWaitForFences(d->dev, 1, &fence, VK_TRUE, UINT64_MAX);
        d->t.vkDestroyFence(d->dev, fence, d->vkac);
    }
    d->t.vkFreeCommandBuffers(d->dev, d->cmd_pool, 1, &cb);
    pthread_mutex_unlock(&d->mu);
    if (r != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_DEVICE, "vulkan submit: %s", vk_result_str(r));
    return vk_check_validation(d, err);
}

void vk_dev_info_public(const vk_dev_info *vi, int index, int tier, vkllm_device_info *d) {
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%.255s", vi->name);
    snprintf(d->kind, sizeof d->kind, "%.31s", vi->kind);
    snprintf(d->backend, sizeof d->backend, "vulkan");
    snprintf(d->vendor, sizeof d->vendor, "%.31s", vi->vendor);
    snprintf(d->features, sizeof d->features, "%.255s", vi->features);
    snprintf(d->driver, sizeof d->driver, "%.127s", vi->driver);
    snprintf(d->api_version, sizeof d->api_version, "%u.%u.%u",
             VK_API_VERSION_MAJOR(vi->api_version), VK_API_VERSION_MINOR(vi->api_version),
             VK_API_VERSION_PATCH(vi->api_version));
    d->memory_bytes = vi->device_local_bytes;
    d->subgroup_size = vi->subgroup_size;
    d->max_buffer_bytes = vi->max_buffer_range;
    d->tier = tier;
    d->index = index;
}
