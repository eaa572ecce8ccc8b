/* The Vulkan entry points vkllm calls, as per-device tables: no process globals.
 *
 * A host that embeds vkllm may have its own Vulkan loader state (volk, its own function
 * pointers, a different libvulkan), and two runtimes may sit on two instances at once. So
 * every entry point is loaded into the vk_dev that uses it, from the vkGetInstanceProcAddr
 * the runtime was given or found (vk_fn_load_*), and nothing is written to shared state
 * after start-up. The lists below are the only place a new entry point is named.
 */
#ifndef VKLLM_VK_VK_FN_H
#define VKLLM_VK_VK_FN_H

#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan_core.h>

#include <stdbool.h>

/* Loaded with a NULL instance. vkEnumerateInstanceVersion is NULL on a 1.0 loader. */
#define VK_FN_GLOBAL(X)                                                                            \
    X(vkCreateInstance)                                                                            \
    X(vkEnumerateInstanceVersion)                                                                  \
    X(vkEnumerateInstanceLayerProperties)                                                          \
    X(vkEnumerateInstanceExtensionProperties)

#define VK_FN_INSTANCE(X)                                                                          \
    X(vkDestroyInstance)                                                                           \
    X(vkEnumeratePhysicalDevices)                                                                  \
    X(vkGetPhysicalDeviceProperties)                                                               \
    X(vkGetPhysicalDeviceProperties2)                                                              \
    X(vkGetPhysicalDeviceFeatures2)                                                                \
    X(vkGetPhysicalDeviceQueueFamilyProperties)                                                    \
    X(vkGetPhysicalDeviceMemoryProperties)                                                         \
    X(vkGetPhysicalDeviceMemoryProperties2)                                                        \
    X(vkEnumerateDeviceExtensionProperties)                                                        \
    X(vkCreateDevice)                                                                              \
    X(vkGetDeviceProcAddr)

/* Only present when VK_EXT_debug_utils is enabled (validation runs). */
#define VK_FN_INSTANCE_OPTIONAL(X)                                                                 \
    X(vkCreateDebugUtilsMessengerEXT)                                                              \
    X(vkDestroyDebugUtilsMessengerEXT)

#define VK_FN_DEVICE(X)                                                                            \
    X(vkAllocateCommandBuffers)                                                                    \
    X(vkAllocateDescriptorSets)                                                                    \
    X(vkAllocateMemory)                                                                            \
    X(vkBeginCommandBuffer)                                                                        \
    X(vkBindBufferMemory)                                                                          \
    X(vkCmdBindDescriptorSets)                                                                     \
    X(vkCmdBindPipeline)                                                                           \
    X(vkCmdCopyBuffer)                                                                             \
    X(vkCmdDispatch)                                                                               \
    X(vkCmdFillBuffer)                                                                             \
    X(vkCmdPipelineBarrier)                                                                        \
    X(vkCmdPushConstants)                                                                          \
    X(vkCmdResetQueryPool)                                                                         \
    X(vkCmdWriteTimestamp)                                                                         \
    X(vkCreateBuffer)                                                                              \
    X(vkCreateCommandPool)                                                                         \
    X(vkCreateComputePipelines)                                                                    \
    X(vkCreateDescriptorPool)                                                                      \
    X(vkCreateDescriptorSetLayout)                                                                 \
    X(vkCreateFence)                                                                               \
    X(vkCreatePipelineCache)                                                                       \
    X(vkCreatePipelineLayout)                                                                      \
    X(vkCreateQueryPool)                                                                           \
    X(vkCreateShaderModule)                                                                        \
    X(vkDestroyBuffer)                                                                             \
    X(vkDestroyCommandPool)                                                                        \
    X(vkDestroyDescriptorPool)                                                                     \
    X(vkDestroyDescriptorSetLayout)                                                                \
    X(vkDestroyDevice)                                                                             \
    X(vkDestroyFence)                                                                              \
    X(vkDestroyPipeline)                                                                           \
    X(vkDestroyPipelineCache)                                                                      \
    X(vkDestroyPipelineLayout)                                                                     \
    X(vkDestroyQueryPool)                                                                          \
    X(vkDestroyShaderModule)                                                                       \
    X(vkDeviceWaitIdle)                                                                            \
    X(vkEndCommandBuffer)                                                                          \
    X(vkFreeCommandBuffers)                                                                        \
    X(vkFreeMemory)                                                                                \
    X(vkGetBufferMemoryRequirements)                                                               \
    X(vkGetDeviceQueue)                                                                            \
    X(vkGetFenceStatus)                                                                            \
    X(vkGetPipelineCacheData)                                                                      \
    X(vkGetQueryPoolResults)                                                                       \
    X(vkMapMemory)                                                                                 \
    X(vkQueueSubmit)                                                                               \
    X(vkResetCommandBuffer)                                                                        \
    X(vkResetDescriptorPool)                                                                       \
    X(vkResetFences)                                                                               \
    X(vkUnmapMemory)                                                                               \
    X(vkUpdateDescriptorSets)                                                                      \
    X(vkWaitForFences)

#define VK_FN_MEMBER(name) PFN_##name name;

/* The loader's entry point and the instance-level calls. */
typedef struct vk_ifn {
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    void *lib; /* libvulkan.so.1 when vkllm opened it itself (dlclose at the end), or NULL */
    VK_FN_GLOBAL(VK_FN_MEMBER)
    VK_FN_INSTANCE(VK_FN_MEMBER)
    VK_FN_INSTANCE_OPTIONAL(VK_FN_MEMBER)
} vk_ifn;

/* Device-level calls, through the device's own dispatch (vkGetDeviceProcAddr). */
typedef struct vk_dfn {
    VK_FN_DEVICE(VK_FN_MEMBER)
} vk_dfn;

/* gipa: the host's vkGetInstanceProcAddr, or NULL to open libvulkan.so.1 (its own handle,
 * released by vk_fn_close). Fills the global entry points. false: no loader, or it lacks one
 * of them (the message in err_msg). */
bool vk_fn_open(vk_ifn *f, PFN_vkGetInstanceProcAddr gipa, char *err_msg, size_t err_cap);
/* The instance-level entry points of inst; false names the first one missing. */
bool vk_fn_load_instance(vk_ifn *f, VkInstance inst, char *err_msg, size_t err_cap);
bool vk_fn_load_device(const vk_ifn *f, VkDevice dev, vk_dfn *t, char *err_msg, size_t err_cap);
void vk_fn_close(vk_ifn *f);

#endif
