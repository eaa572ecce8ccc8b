/* Loading the Vulkan entry points into per-device tables (vk_fn.h). dlopen keeps a reference
 * count, so every runtime opening libvulkan.so.1 for itself is safe from any thread. */
#include "vk/vk_fn.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

bool vk_fn_open(vk_ifn *f, PFN_vkGetInstanceProcAddr gipa, char *err_msg, size_t err_cap) {
    memset(f, 0, sizeof *f);
    if (!gipa) {
        f->lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!f->lib) f->lib = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
        if (!f->lib) {
            snprintf(err_msg, err_cap,
                     "no Vulkan loader (libvulkan.so.1) found: install a Vulkan driver, e.g. "
                     "mesa-vulkan-drivers, or use --device cpu");
            return false;
        }
        /* POSIX: a function pointer round-trips through dlsym's void * */
        void *sym = dlsym(f->lib, "vkGetInstanceProcAddr");
        memcpy(&gipa, &sym, sizeof gipa);
        if (!gipa) {
            snprintf(err_msg, err_cap, "libvulkan.so.1 has no vkGetInstanceProcAddr");
            vk_fn_close(f);
            return false;
        }
    }
    f->vkGetInstanceProcAddr = gipa;
#define LOAD(name) f->name = (PFN_##name)gipa(VK_NULL_HANDLE, #name);
    VK_FN_GLOBAL(LOAD)
#undef LOAD
    if (!f->vkCreateInstance || !f->vkEnumerateInstanceExtensionProperties ||
        !f->vkEnumerateInstanceLayerProperties) {
        snprintf(err_msg, err_cap, "the Vulkan loader lacks vkCreateInstance");
        vk_fn_close(f);
        return false;
    }
    return true;
}

bool vk_fn_load_instance(vk_ifn *f, VkInstance inst, char *err_msg, size_t err_cap) {
    const char *missing = NULL;
#define LOAD(name)                                                                                 \
    f->name = (PFN_##name)f->vkGetInstanceProcAddr(inst, #name);                                   \
    if (!f->name && !missing) missing = #name;
    VK_FN_INSTANCE(LOAD)
#undef LOAD
#define LOAD_OPT(name) f->name = (PFN_##name)f->vkGetInstanceProcAddr(inst, #name);
    VK_FN_INSTANCE_OPTIONAL(LOAD_OPT)
#undef LOAD_OPT
    if (missing) {
        snprintf(err_msg, err_cap, "the Vulkan instance has no %s (Vulkan 1.1 is needed)", missing);
        return false;
    }
    return true;
}

bool vk_fn_load_device(const vk_ifn *f, VkDevice dev, vk_dfn *t, char *err_msg, size_t err_cap) {
    const char *missing = NULL;
    memset(t, 0, sizeof *t);
#define LOAD(name)                                                                                 \
    t->name = (PFN_##name)f->vkGetDeviceProcAddr(dev, #name);                                      \
    if (!t->name && !missing) missing = #name;
    VK_FN_DEVICE(LOAD)
#undef LOAD
    if (missing) {
        snprintf(err_msg, err_cap, "the Vulkan device has no %s", missing);
        return false;
    }
    return true;
}

void vk_fn_close(vk_ifn *f) {
    if (f->lib) dlclose(f->lib);
    memset(f, 0, sizeof *f);
}
