/* A runtime on the host's Vulkan device (vkllm_vulkan_device): its objects taken, never
 * destroyed; the tier from the features the host enabled; the host's queue and lock. */
#include "vk/vk.h"

#include <string.h>

/* The features the host enabled on its device, from the VkPhysicalDeviceFeatures2 chain it
 * passed to vkCreateDevice: the tier vkllm may use there (never more than the device has). */
static int host_tier(const vk_dev *d, const vkllm_vulkan_device *h, uint32_t api) {
    bool s16 = false, s8 = false, f16 = false, i8 = false, idot = false;
    for (const VkBaseInStructure *p = h->enabled_features; p; p = p->pNext) {
        switch (p->sType) {
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES:
            s16 |= ((const VkPhysicalDeviceVulkan11Features *)p)->storageBuffer16BitAccess;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES: {
            const VkPhysicalDeviceVulkan12Features *v = (const void *)p;
            s8 |= v->storageBuffer8BitAccess;
            f16 |= v->shaderFloat16;
            i8 |= v->shaderInt8;
            break;
        }
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES:
            idot |= ((const VkPhysicalDeviceVulkan13Features *)p)->shaderIntegerDotProduct;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES:
            s16 |= ((const VkPhysicalDevice16BitStorageFeatures *)p)->storageBuffer16BitAccess;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES:
            s8 |= ((const VkPhysicalDevice8BitStorageFeatures *)p)->storageBuffer8BitAccess;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES: {
            const VkPhysicalDeviceShaderFloat16Int8Features *v = (const void *)p;
            f16 |= v->shaderFloat16;
            i8 |= v->shaderInt8;
            break;
        }
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES:
            idot |= ((const VkPhysicalDeviceShaderIntegerDotProductFeatures *)p)
                        ->shaderIntegerDotProduct;
            break;
        default:
            break;
        }
    }
    /* below the core version that has them, the features need their extensions enabled */
    bool ext8 = api >= VK_API_VERSION_1_2, ext_f16 = ext8, ext_idot = api >= VK_API_VERSION_1_3;
    for (uint32_t i = 0; i < h->n_enabled_extensions && h->enabled_extensions; i++) {
        const char *e = h->enabled_extensions[i];
        if (!e) continue;
        ext8 |= strcmp(e, VK_KHR_8BIT_STORAGE_EXTENSION_NAME) == 0;
        ext_f16 |= strcmp(e, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME) == 0;
        ext_idot |= strcmp(e, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME) == 0;
    }
    int tier = VK_TIER0;
    if (s16 && s8 && ext8 && f16 && i8 && ext_f16 && d->info.subgroup_arith) {
        tier = VK_TIER1;
        if (idot && ext_idot) tier = VK_TIER2;
    }
    return tier < d->info.tier ? tier : d->info.tier;
}

/* Takes the host's instance, physical device, device and queue (vkllm_vulkan_device). */
vkllm_status vk_host_attach(vk_dev *d, const vkllm_vulkan_device *h, core_err *err) {
    if (!h->instance || !h->physical_device || !h->device)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "vk_device: instance, physical_device and "
                         "device are required");
    const uint32_t inst_api =
        h->instance_api_version ? h->instance_api_version : VK_API_VERSION_1_1;
    if (inst_api < VK_API_VERSION_1_1)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "vk_device: the instance is for Vulkan "
                         "%u.%u; vkllm needs 1.1",
                         VK_API_VERSION_MAJOR(inst_api), VK_API_VERSION_MINOR(inst_api));
    d->instance = (VkInstance)h->instance;
    char msg[256];
    if (!vk_fn_load_instance(&d->fn, d->instance, msg, sizeof msg))
        return core_errf(err, VKLLM_ERR_NO_DEVICE, "vk_device: %s", msg);
    VkPhysicalDevice pd[VK_MAX_PDEV];
    vk_dev_info info[VK_MAX_PDEV];
    uint32_t n = 0;
    vkllm_status st = vk_list_pdevs(&d->fn, d->instance, pd, info, &n, err);
    if (st != VKLLM_OK) return st;
    d->pdev = (VkPhysicalDevice)h->physical_device;
    d->index = -1;
    for (uint32_t i = 0; i < n; i++)
        if (pd[i] == d->pdev) d->index = (int)i;
    if (d->index < 0)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "vk_device: the physical device is not a "
                         "Vulkan 1.1 device of the instance");
    d->info = info[d->index];
    /* the device's version is the lower of the instance's and the physical device's */
    const uint32_t api = inst_api < d->info.api_version ? inst_api : d->info.api_version;
    d->tier = host_tier(d, h, api);

    uint32_t nq = 0;
    d->fn.vkGetPhysicalDeviceQueueFamilyProperties(d->pdev, &nq, NULL);
    VkQueueFamilyProperties qf[16];
    if (nq > 16) nq = 16;
    d->fn.vkGetPhysicalDeviceQueueFamilyProperties(d->pdev, &nq, qf);
    if (h->queue_family >= nq || !(qf[h->queue_family].queueFlags & VK_QUEUE_COMPUTE_BIT))
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vk_device: queue family %u %s",
                         h->queue_family,
                         h->queue_family >= nq ? "does not exist" : "has no compute");
    if (!h->queue && h->queue_index >= qf[h->queue_family].queueCount)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "vk_device: queue %u of family %u does "
                         "not exist",
                         h->queue_index, h->queue_family);
    if ((h->lock_queue == NULL) != (h->unlock_queue == NULL))
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "vk_device: lock_queue and unlock_queue "
                         "go together");
    d->qfam = h->queue_family;
    d->dev = (VkDevice)h->device;
    if ((st = vk_dev_load(d, err)) != VKLLM_OK) return st;
    if (h->queue)
        d->queue = (VkQueue)h->queue;
    else
        d->t.vkGetDeviceQueue(d->dev, h->queue_family, h->queue_index, &d->queue);
    d->lock_queue = h->lock_queue;
    d->unlock_queue = h->unlock_queue;
    d->queue_user = h->queue_user;
    vk_log(d, VKLLM_LOG_INFO, "vulkan: the host's device %s, queue family %u, tier %d",
           d->info.name, d->qfam, d->tier);
    return vk_dev_finish(d, err);
}
