/* The demo's Vulkan instance and device, made the way a game would make them, plus what
 * vkllm needs to share them: the features vkllm's faster kernels use are enabled when the
 * device has them (vkllm reads the enabled chain to pick its capability tier), and the queue
 * is guarded by one mutex that both the demo and vkllm take around their submissions.
 *
 * VKLLM_VK_VALIDATION=1 enables VK_LAYER_KHRONOS_validation with a messenger that counts and
 * prints every warning and error, from the demo's calls and from vkllm's alike (they share the
 * instance); main() fails the run if any arrived. */
#include "win.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint g_validation_messages;

uint32_t win_gpu_validation_messages(void) {
    return atomic_load(&g_validation_messages);
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *cb,
                                                 void *user) {
    (void)type;
    (void)user;
    atomic_fetch_add(&g_validation_messages, 1);
    fprintf(stderr, "vkllm-window: validation %s: %s\n",
            sev >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? "error" : "warning",
            cb && cb->pMessage ? cb->pMessage : "(no text)");
    return VK_FALSE;
}

static bool want_validation(void) {
    const char *v = getenv("VKLLM_VK_VALIDATION");
    return v && *v && strcmp(v, "0") != 0;
}

static bool has_layer(const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return false;
    VkLayerProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            found |= strcmp(p[i].layerName, name) == 0;
    free(p);
    return found;
}

static bool has_device_ext(VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            found |= strcmp(p[i].extensionName, name) == 0;
    free(p);
    return found;
}

static const VkDebugUtilsMessengerCreateInfoEXT k_messenger_ci = {
    .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
    .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
    .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                   VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                   VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
    .pfnUserCallback = on_message,
};

static bool create_instance(win_gpu *g, char *err, size_t err_cap) {
    /* vkllm needs an instance of 1.1 or later; ask for 1.3 where the loader has it */
    uint32_t loader = VK_API_VERSION_1_0;
    vkEnumerateInstanceVersion(&loader);
    if (loader < VK_API_VERSION_1_1) {
        snprintf(err, err_cap, "the Vulkan loader is 1.0; vkllm needs 1.1 or later");
        return false;
    }
    g->instance_api = loader < VK_API_VERSION_1_3 ? loader : VK_API_VERSION_1_3;
    uint32_t n_glfw = 0;
    const char **glfw_exts = glfwGetRequiredInstanceExtensions(&n_glfw);
    if (!glfw_exts) {
        snprintf(err, err_cap,
                 "the Vulkan loader has no surface extensions for this window "
                 "system: no Vulkan driver? (Debian: mesa-vulkan-drivers)");
        return false;
    }
    const char *exts[16];
    uint32_t n_ext = 0;
    for (uint32_t i = 0; i < n_glfw && n_ext < 15; i++)
        exts[n_ext++] = glfw_exts[i];
    const char *layer = "VK_LAYER_KHRONOS_validation";
    g->validation = want_validation();
    if (g->validation) {
        if (!has_layer(layer)) {
            snprintf(err, err_cap,
                     "VKLLM_VK_VALIDATION is set but %s is not installed "
                     "(Debian: vulkan-validationlayers)",
                     layer);
            return false;
        }
        exts[n_ext++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    }
    const VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "vkllm-window",
        .pEngineName = "vkllm-window",
        .apiVersion = g->instance_api,
    };
    const VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        /* the messenger in pNext also covers vkCreateInstance and vkDestroyInstance */
        .pNext = g->validation ? &k_messenger_ci : NULL,
        .pApplicationInfo = &app,
        .enabledLayerCount = g->validation ? 1 : 0,
        .ppEnabledLayerNames = &layer,
        .enabledExtensionCount = n_ext,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateInstance(&ci, NULL, &g->instance);
    if (r != VK_SUCCESS) {
        snprintf(err, err_cap, "vkCreateInstance failed (%d): no Vulkan driver?", (int)r);
        return false;
    }
    if (g->validation) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
                g->instance, "vkCreateDebugUtilsMessengerEXT");
        if (!create || create(g->instance, &k_messenger_ci, NULL, &g->messenger) != VK_SUCCESS) {
            snprintf(err, err_cap, "cannot create the validation messenger");
            return false;
        }
    }
    return true;
}

/* A family that can draw, compute (vkllm) and present to this surface. */
static uint32_t pick_family(VkPhysicalDevice pd, VkSurfaceKHR surface) {
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties qf[32];
    if (n > 32) n = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, qf);
    const VkQueueFlags need = VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT;
    for (uint32_t i = 0; i < n; i++) {
        VkBool32 present = VK_FALSE;
        vkGetPhysicalDeviceSurfaceSupportKHR(pd, i, surface, &present);
        if ((qf[i].queueFlags & need) == need && present) return i;
    }
    return UINT32_MAX;
}

static bool pick_device(win_gpu *g, char *err, size_t err_cap) {
    uint32_t n = 0;
    if (vkEnumeratePhysicalDevices(g->instance, &n, NULL) != VK_SUCCESS || n == 0) {
        snprintf(err, err_cap, "no Vulkan device (Debian: mesa-vulkan-drivers for lavapipe)");
        return false;
    }
    VkPhysicalDevice pds[16];
    if (n > 16) n = 16;
    vkEnumeratePhysicalDevices(g->instance, &n, pds);
    /* a discrete GPU first, then integrated, virtual, and a CPU driver (lavapipe) last */
    static const int rank[] = {[VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU] = 0,
                               [VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU] = 1,
                               [VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU] = 2,
                               [VK_PHYSICAL_DEVICE_TYPE_CPU] = 3,
                               [VK_PHYSICAL_DEVICE_TYPE_OTHER] = 4};
    int best_rank = 99;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(pds[i], &p);
        const uint32_t fam = pick_family(pds[i], g->surface);
        if (p.apiVersion < VK_API_VERSION_1_1 || fam == UINT32_MAX ||
            !has_device_ext(pds[i], VK_KHR_SWAPCHAIN_EXTENSION_NAME))
            continue;
        const int rk = p.deviceType <= VK_PHYSICAL_DEVICE_TYPE_CPU ? rank[p.deviceType] : 4;
        if (rk < best_rank) {
            best_rank = rk;
            g->pdev = pds[i];
            g->props = p;
            g->qfam = fam;
        }
    }
    if (!g->pdev) {
        snprintf(err, err_cap,
                 "no Vulkan 1.1 device can draw, compute and present to this "
                 "window");
        return false;
    }
    return true;
}

/* Enables what vkllm's tier 1/2 kernels use (16/8-bit storage, fp16, int8, integer dot
 * products) where the device has them; vkllm reads this same chain to choose its tier. */
static void choose_features(win_gpu *g) {
    /* what both the instance and the device have */
    const uint32_t api =
        g->props.apiVersion < g->instance_api ? g->props.apiVersion : g->instance_api;
    g->f2 = (VkPhysicalDeviceFeatures2){.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    g->f11 = (VkPhysicalDeviceVulkan11Features){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    g->f12 = (VkPhysicalDeviceVulkan12Features){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    g->f13 = (VkPhysicalDeviceVulkan13Features){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    g->s16 = (VkPhysicalDevice16BitStorageFeatures){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    /* the VulkanNNFeatures structs exist from 1.2 on; a 1.1 device gets the 16-bit storage
     * struct alone (vkllm then runs its tier-0 kernels, which need nothing) */
    void **tail = &g->f2.pNext;
    if (api >= VK_API_VERSION_1_2) {
        *tail = &g->f11;
        g->f11.pNext = &g->f12;
        tail = &g->f12.pNext;
        if (api >= VK_API_VERSION_1_3) {
            *tail = &g->f13;
            tail = &g->f13.pNext;
        }
    } else {
        *tail = &g->s16;
    }
    VkPhysicalDeviceVulkan11Features h11 = g->f11;
    VkPhysicalDeviceVulkan12Features h12 = g->f12;
    VkPhysicalDeviceVulkan13Features h13 = g->f13;
    VkPhysicalDevice16BitStorageFeatures h16 = g->s16;
    VkPhysicalDeviceFeatures2 have = g->f2;
    /* the same chain shape, to read what the device has */
    if (api >= VK_API_VERSION_1_2) {
        have.pNext = &h11;
        h11.pNext = &h12;
        h12.pNext = g->f12.pNext ? &h13 : NULL;
        h13.pNext = NULL;
    } else {
        have.pNext = &h16;
    }
    vkGetPhysicalDeviceFeatures2(g->pdev, &have);
    g->f11.storageBuffer16BitAccess = h11.storageBuffer16BitAccess;
    g->f12.storageBuffer8BitAccess = h12.storageBuffer8BitAccess;
    g->f12.shaderFloat16 = h12.shaderFloat16;
    g->f12.shaderInt8 = h12.shaderInt8;
    g->f13.shaderIntegerDotProduct = g->f12.pNext ? h13.shaderIntegerDotProduct : VK_FALSE;
    g->s16.storageBuffer16BitAccess = h16.storageBuffer16BitAccess;
}

bool win_gpu_create(win_gpu *g, GLFWwindow *window, char *err, size_t err_cap) {
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->queue_mu, NULL);
    if (!create_instance(g, err, err_cap)) return false;
    VkResult r = glfwCreateWindowSurface(g->instance, window, NULL, &g->surface);
    if (r != VK_SUCCESS) {
        snprintf(err, err_cap, "cannot create a Vulkan surface for the window (%d)", (int)r);
        return false;
    }
    if (!pick_device(g, err, err_cap)) return false;
    choose_features(g);
    g->exts[g->n_exts++] = VK_KHR_SWAPCHAIN_EXTENSION_NAME;
    const float prio = 1.0f;
    const VkDeviceQueueCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = g->qfam,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    const VkDeviceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &g->f2,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qci,
        .enabledExtensionCount = g->n_exts,
        .ppEnabledExtensionNames = g->exts,
    };
    r = vkCreateDevice(g->pdev, &ci, NULL, &g->dev);
    if (r != VK_SUCCESS) {
        snprintf(err, err_cap, "%s: vkCreateDevice failed (%d)", g->props.deviceName, (int)r);
        return false;
    }
    vkGetDeviceQueue(g->dev, g->qfam, 0, &g->queue);
    return true;
}

void win_gpu_destroy(win_gpu *g) {
    if (g->dev) vkDestroyDevice(g->dev, NULL);
    if (g->surface) vkDestroySurfaceKHR(g->instance, g->surface, NULL);
    if (g->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
                g->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy) destroy(g->instance, g->messenger, NULL);
    }
    if (g->instance) vkDestroyInstance(g->instance, NULL);
    pthread_mutex_destroy(&g->queue_mu);
    memset(g, 0, sizeof *g);
}

void win_gpu_lock_queue(void *user) {
    pthread_mutex_lock(&((win_gpu *)user)->queue_mu);
}
void win_gpu_unlock_queue(void *user) {
    pthread_mutex_unlock(&((win_gpu *)user)->queue_mu);
}

void win_gpu_vkllm_device(win_gpu *g, vkllm_vulkan_device *out) {
    *out = (vkllm_vulkan_device){
        .struct_size = sizeof *out,
        .instance = g->instance,
        .instance_api_version = g->instance_api,
        .physical_device = g->pdev,
        .device = g->dev,
        .queue_family = g->qfam,
        .queue = g->queue,
        .enabled_features = &g->f2,
        .enabled_extensions = g->exts,
        .n_enabled_extensions = g->n_exts,
        .lock_queue = win_gpu_lock_queue,
        .unlock_queue = win_gpu_unlock_queue,
        .queue_user = g,
    };
}
