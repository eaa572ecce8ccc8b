/* vkllm on the host's Vulkan device (vkllm_runtime_desc.vk_device), as a game engine would
 * use it: the test is the host. It creates its own instance (with the validation layer and
 * its own messenger: any message fails), device and queue on lavapipe through libvulkan,
 * hands them to vkllm, and checks:
 *  - greedy output on the host's device equals the CPU path's, token for token;
 *  - the host keeps submitting its own compute work to the same queue from another thread
 *    while vkllm generates (both through the queue lock callback), and that work is right;
 *  - vkllm picks its tier from the features the host enabled (none: tier 0);
 *  - after vkllm_runtime_destroy the host's device still works;
 *  - bad host objects are clear errors.
 * The host's compute kernel is vkllm's embedded bandwidth kernel (an XOR over a buffer), taken
 * from the library only for its SPIR-V: everything else here is plain Vulkan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api_test_util.h"
#include "vk/vk.h" /* vk_shader_find: SPIR-V for the host's own kernel */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the host links libvulkan, as an application does */
extern PFN_vkVoidFunction vkGetInstanceProcAddr(VkInstance, const char *);

#define H_WORDS 4096 /* uvec4 words the host's kernel reads */

typedef struct host {
    vk_ifn fn;
    vk_dfn t;
    VkInstance inst;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice pdev;
    VkDevice dev;
    uint32_t qfam;
    VkQueue queue;
    VkPhysicalDeviceFeatures2 f2;
    VkPhysicalDeviceVulkan11Features f11;
    VkPhysicalDeviceVulkan12Features f12;
    VkPhysicalDeviceVulkan13Features f13;
    pthread_mutex_t queue_mu;
    atomic_uint n_messages;
    atomic_uint n_locks;
    char first[512];
} host;

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *cb,
                                                 void *user) {
    (void)sev, (void)type;
    host *h = user;
    if (atomic_fetch_add(&h->n_messages, 1) == 0)
        snprintf(h->first, sizeof h->first, "%s", cb && cb->pMessage ? cb->pMessage : "?");
    fprintf(stderr, "host validation: %s\n", cb && cb->pMessage ? cb->pMessage : "?");
    return VK_FALSE;
}

static void lock_queue(void *user) {
    host *h = user;
    pthread_mutex_lock(&h->queue_mu);
    atomic_fetch_add(&h->n_locks, 1);
}

static void unlock_queue(void *user) {
    pthread_mutex_unlock(&((host *)user)->queue_mu);
}

/* The host's instance and device on lavapipe; features: enable vkllm's tier-2 set. */
static void host_create(host *h, bool features) {
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->queue_mu, NULL);
    char msg[256];
    if (!vk_fn_open(&h->fn, vkGetInstanceProcAddr, msg, sizeof msg)) fail_msg("%s", msg);
    const char *layers[] = {"VK_LAYER_KHRONOS_validation"};
    const char *exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "test_vk_host",
                             .apiVersion = VK_API_VERSION_1_3};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                .pApplicationInfo = &app,
                                .enabledLayerCount = 1,
                                .ppEnabledLayerNames = layers,
                                .enabledExtensionCount = 1,
                                .ppEnabledExtensionNames = exts};
    VkResult r = h->fn.vkCreateInstance(&ici, NULL, &h->inst);
    if (r != VK_SUCCESS)
        fail_msg("vkCreateInstance with the validation layer: %d (vulkan-validationlayers)", r);
    if (!vk_fn_load_instance(&h->fn, h->inst, msg, sizeof msg)) fail_msg("%s", msg);
    VkDebugUtilsMessengerCreateInfoEXT mi = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT,
        .pfnUserCallback = on_message,
        .pUserData = h};
    assert_int_equal(h->fn.vkCreateDebugUtilsMessengerEXT(h->inst, &mi, NULL, &h->messenger),
                     VK_SUCCESS);
    uint32_t n = 8;
    VkPhysicalDevice pd[8];
    assert_true(h->fn.vkEnumeratePhysicalDevices(h->inst, &n, pd) >= 0 && n > 0);
    for (uint32_t i = 0; i < n && !h->pdev; i++) {
        VkPhysicalDeviceProperties p;
        h->fn.vkGetPhysicalDeviceProperties(pd[i], &p);
        if (p.apiVersion >= VK_API_VERSION_1_3) h->pdev = pd[i];
    }
    if (!h->pdev) fail_msg("no Vulkan 1.3 device (lavapipe: mesa-vulkan-drivers)");
    uint32_t nq = 8;
    VkQueueFamilyProperties qf[8];
    h->fn.vkGetPhysicalDeviceQueueFamilyProperties(h->pdev, &nq, qf);
    h->qfam = UINT32_MAX;
    for (uint32_t i = 0; i < nq && h->qfam == UINT32_MAX; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) h->qfam = i;
    assert_true(h->qfam != UINT32_MAX);
    h->f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    h->f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES;
    h->f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
    h->f13.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES;
    if (features) {
        /* what the device has, as a renderer that turns on what it finds would do */
        h->f2.pNext = &h->f11;
        h->f11.pNext = &h->f12;
        h->f12.pNext = &h->f13;
        h->fn.vkGetPhysicalDeviceFeatures2(h->pdev, &h->f2);
    }
    const float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = h->qfam,
                                   .queueCount = 1,
                                   .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                              .pNext = features ? &h->f2 : NULL,
                              .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci};
    assert_int_equal(h->fn.vkCreateDevice(h->pdev, &dci, NULL, &h->dev), VK_SUCCESS);
    if (!vk_fn_load_device(&h->fn, h->dev, &h->t, msg, sizeof msg)) fail_msg("%s", msg);
    h->t.vkGetDeviceQueue(h->dev, h->qfam, 0, &h->queue);
}

static void host_destroy(host *h) {
    h->t.vkDestroyDevice(h->dev, NULL);
    h->fn.vkDestroyDebugUtilsMessengerEXT(h->inst, h->messenger, NULL);
    h->fn.vkDestroyInstance(h->inst, NULL);
    vk_fn_close(&h->fn);
    pthread_mutex_destroy(&h->queue_mu);
}

static vkllm_vulkan_device host_desc(host *h, bool with_lock) {
    return (vkllm_vulkan_device){
        .struct_size = sizeof(vkllm_vulkan_device),
        .instance = h->inst,
        .instance_api_version = VK_API_VERSION_1_3,
        .physical_device = h->pdev,
        .device = h->dev,
        .queue_family = h->qfam,
        .queue = h->queue,
        .get_instance_proc_addr =
            (vkllm_vk_void_fn(*)(void *, const char *))(void (*)(void))vkGetInstanceProcAddr,
        .enabled_features = h->f2.pNext ? &h->f2 : NULL,
        .lock_queue = with_lock ? lock_queue : NULL,
        .unlock_queue = with_lock ? unlock_queue : NULL,
        .queue_user = h,
    };
}

/* ---- the host's own compute work: XOR of a buffer's words, checked on the host ---- */

typedef struct host_job {
    host *h;
    VkBuffer buf[2];
    VkDeviceMemory mem[2];
    uint32_t *map[2];
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipeline pipe;
    VkDescriptorPool dpool;
    VkDescriptorSet set;
    VkCommandPool cpool;
    VkCommandBuffer cb;
    VkFence fence;
    uint32_t expect;
} host_job;

static void job_create(host_job *j, host *h) {
    memset(j, 0, sizeof *j);
    j->h = h;
    VkPhysicalDeviceMemoryProperties mp;
    h->fn.vkGetPhysicalDeviceMemoryProperties(h->pdev, &mp);
    const VkDeviceSize sizes[2] = {H_WORDS * 16, 256};
    for (int b = 0; b < 2; b++) {
        VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                                 .size = sizes[b],
                                 .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT};
        assert_int_equal(h->t.vkCreateBuffer(h->dev, &bi, NULL, &j->buf[b]), VK_SUCCESS);
        VkMemoryRequirements req;
        h->t.vkGetBufferMemoryRequirements(h->dev, j->buf[b], &req);
        uint32_t type = UINT32_MAX;
        const VkMemoryPropertyFlags want =
            VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        for (uint32_t i = 0; i < mp.memoryTypeCount && type == UINT32_MAX; i++)
            if ((req.memoryTypeBits & (1u << i)) &&
                (mp.memoryTypes[i].propertyFlags & want) == want)
                type = i;
        assert_true(type != UINT32_MAX);
        VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                   .allocationSize = req.size,
                                   .memoryTypeIndex = type};
        assert_int_equal(h->t.vkAllocateMemory(h->dev, &ai, NULL, &j->mem[b]), VK_SUCCESS);
        assert_int_equal(h->t.vkBindBufferMemory(h->dev, j->buf[b], j->mem[b], 0), VK_SUCCESS);
        assert_int_equal(
            h->t.vkMapMemory(h->dev, j->mem[b], 0, VK_WHOLE_SIZE, 0, (void **)&j->map[b]),
            VK_SUCCESS);
    }
    uint32_t x = 0x12345678u;
    j->expect = 0;
    for (uint32_t i = 0; i < H_WORDS * 4; i++) {
        x = x * 1664525u + 1013904223u;
        j->map[0][i] = x;
        j->expect ^= x;
    }
    const vk_shader_blob *sh = vk_shader_find("bw_read_t0");
    assert_non_null(sh);
    VkDescriptorSetLayoutBinding bind[2];
    for (uint32_t b = 0; b < 2; b++)
        bind[b] =
            (VkDescriptorSetLayoutBinding){.binding = b,
                                           .descriptorCount = 1,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo dci = {.sType =
                                               VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = 2,
                                           .pBindings = bind};
    assert_int_equal(h->t.vkCreateDescriptorSetLayout(h->dev, &dci, NULL, &j->dsl), VK_SUCCESS);
    VkPushConstantRange pcr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = 8};
    VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                      .setLayoutCount = 1,
                                      .pSetLayouts = &j->dsl,
                                      .pushConstantRangeCount = 1,
                                      .pPushConstantRanges = &pcr};
    assert_int_equal(h->t.vkCreatePipelineLayout(h->dev, &lci, NULL, &j->layout), VK_SUCCESS);
    VkShaderModuleCreateInfo mci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                    .codeSize = *sh->size,
                                    .pCode = sh->code};
    VkShaderModule mod;
    assert_int_equal(h->t.vkCreateShaderModule(h->dev, &mci, NULL, &mod), VK_SUCCESS);
    VkComputePipelineCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod,
                  .pName = "main"},
        .layout = j->layout};
    assert_int_equal(h->t.vkCreateComputePipelines(h->dev, VK_NULL_HANDLE, 1, &pci, NULL, &j->pipe),
                     VK_SUCCESS);
    h->t.vkDestroyShaderModule(h->dev, mod, NULL);
    VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = 2};
    VkDescriptorPoolCreateInfo dpi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                      .maxSets = 1,
                                      .poolSizeCount = 1,
                                      .pPoolSizes = &ps};
    assert_int_equal(h->t.vkCreateDescriptorPool(h->dev, &dpi, NULL, &j->dpool), VK_SUCCESS);
    VkDescriptorSetAllocateInfo sai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                       .descriptorPool = j->dpool,
                                       .descriptorSetCount = 1,
                                       .pSetLayouts = &j->dsl};
    assert_int_equal(h->t.vkAllocateDescriptorSets(h->dev, &sai, &j->set), VK_SUCCESS);
    VkDescriptorBufferInfo dbi[2] = {{j->buf[0], 0, VK_WHOLE_SIZE}, {j->buf[1], 0, VK_WHOLE_SIZE}};
    VkWriteDescriptorSet w = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                              .dstSet = j->set,
                              .descriptorCount = 2,
                              .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                              .pBufferInfo = dbi};
    h->t.vkUpdateDescriptorSets(h->dev, 1, &w, 0, NULL);
    VkCommandPoolCreateInfo cpi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .queueFamilyIndex = h->qfam};
    assert_int_equal(h->t.vkCreateCommandPool(h->dev, &cpi, NULL, &j->cpool), VK_SUCCESS);
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = j->cpool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = 1};
    assert_int_equal(h->t.vkAllocateCommandBuffers(h->dev, &cai, &j->cb), VK_SUCCESS);
    VkCommandBufferBeginInfo bbi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    h->t.vkBeginCommandBuffer(j->cb, &bbi);
    h->t.vkCmdBindPipeline(j->cb, VK_PIPELINE_BIND_POINT_COMPUTE, j->pipe);
    h->t.vkCmdBindDescriptorSets(j->cb, VK_PIPELINE_BIND_POINT_COMPUTE, j->layout, 0, 1, &j->set, 0,
                                 NULL);
    const uint32_t pc[2] = {H_WORDS, 0};
    h->t.vkCmdPushConstants(j->cb, j->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, pc);
    h->t.vkCmdDispatch(j->cb, 1, 1, 1); /* one workgroup: its word is the XOR of all */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    h->t.vkCmdPipelineBarrier(j->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                              VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    assert_int_equal(h->t.vkEndCommandBuffer(j->cb), VK_SUCCESS);
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    assert_int_equal(h->t.vkCreateFence(h->dev, &fi, NULL, &j->fence), VK_SUCCESS);
}

/* Submits the host's kernel (under the queue lock) and checks its answer. */
static bool job_run(host_job *j) {
    host *h = j->h;
    j->map[1][0] = 0;
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &j->cb};
    h->t.vkResetFences(h->dev, 1, &j->fence);
    lock_queue(h);
    VkResult r = h->t.vkQueueSubmit(h->queue, 1, &si, j->fence);
    unlock_queue(h);
    if (r == VK_SUCCESS) r = h->t.vkWaitForFences(h->dev, 1, &j->fence, VK_TRUE, UINT64_MAX);
    return r == VK_SUCCESS && j->map[1][0] == j->expect;
}

static void job_destroy(host_job *j) {
    host *h = j->h;
    h->t.vkDestroyFence(h->dev, j->fence, NULL);
    h->t.vkDestroyCommandPool(h->dev, j->cpool, NULL);
    h->t.vkDestroyDescriptorPool(h->dev, j->dpool, NULL);
    h->t.vkDestroyPipeline(h->dev, j->pipe, NULL);
    h->t.vkDestroyPipelineLayout(h->dev, j->layout, NULL);
    h->t.vkDestroyDescriptorSetLayout(h->dev, j->dsl, NULL);
    for (int b = 0; b < 2; b++) {
        h->t.vkDestroyBuffer(h->dev, j->buf[b], NULL);
        h->t.vkFreeMemory(h->dev, j->mem[b], NULL);
    }
}

typedef struct worker {
    host_job *j;
    atomic_int stop;
    unsigned runs, bad;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    while (!atomic_load(&w->stop)) {
        if (!job_run(w->j)) w->bad++;
        w->runs++;
    }
    return NULL;
}

/* ---- tests ---- */

static const char *k_prompts[] = {
    "The capital of France is",
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
};

static vkllm_model *load(vkllm_runtime *rt) {
    vkllm_model_desc md = {.path = getenv("VKLLM_MODEL")};
    if (!md.path) fail_msg("VKLLM_MODEL is not set (scripts/fetch_model.sh)");
    vkllm_model *m = NULL;
    if (vkllm_model_load(rt, &md, &m) != VKLLM_OK)
        fail_msg("model: %s", vkllm_runtime_last_error(rt));
    return m;
}

/* A session that evaluates three tokens, then the model freed: the runtime has done real
 * work (weights uploaded, a step run) and holds no model. */
static void eval_and_free(vkllm_model *m) {
    vkllm_session *s = NULL;
    assert_int_equal(vkllm_session_create(m, &(vkllm_session_desc){.n_ctx = 64}, &s), VKLLM_OK);
    const int32_t toks[3] = {1, 2, 3};
    assert_int_equal(vkllm_session_eval(s, toks, 3), VKLLM_OK);
    vkllm_session_destroy(s);
    vkllm_model_free(m);
}

static void test_shared_device(void **state) {
    (void)state;
    vkllm_runtime *cpu_rt = NULL;
    vkllm_model *cpu_m = api_test_open(&cpu_rt, "cpu", -1);
    api_test_require_avx2(cpu_rt);

    host h;
    host_create(&h, true);
    host_job job;
    job_create(&job, &h);
    assert_true(job_run(&job)); /* the host's kernel works before vkllm is there */

    vkllm_vulkan_device hd = host_desc(&h, true);
    vkllm_runtime_desc rd = {.vk_device = &hd, .n_threads = API_TEST_THREADS};
    vkllm_runtime *rt = NULL;
    if (vkllm_runtime_create(&rd, &rt) != VKLLM_OK)
        fail_msg("runtime on the host's device: %s", vkllm_runtime_last_error(NULL));
    assert_non_null(strstr(vkllm_runtime_backend_name(rt), "the host's device"));
    vkllm_device_info di = {0};
    vkllm_runtime_device(rt, &di);
    assert_string_equal(di.backend, "vulkan");
    assert_int_equal(di.tier, 2); /* lavapipe has every tier-2 feature, all enabled */
    vkllm_model *m = load(rt);

    worker w = {.j = &job};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, worker_main, &w), 0);
    const unsigned locks0 = atomic_load(&h.n_locks);
    for (size_t i = 0; i < sizeof k_prompts / sizeof k_prompts[0]; i++) {
        run_out a, b;
        api_test_generate(m, k_prompts[i], &(vkllm_sampling){0}, &a);
        api_test_generate(cpu_m, k_prompts[i], &(vkllm_sampling){0}, &b);
        assert_int_equal(a.n, b.n);
        for (int k = 0; k < a.n; k++)
            if (a.ids[k] != b.ids[k])
                fail_msg("prompt %zu token %d: host device %d, cpu %d", i, k, a.ids[k], b.ids[k]);
    }
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    fprintf(stderr, "host kernel runs during generation: %u; queue locks: %u\n", w.runs,
            atomic_load(&h.n_locks) - locks0);
    assert_true(w.runs > 0);
    assert_int_equal(w.bad, 0);
    /* vkllm's submissions took the host's lock too: more locks than the host's own runs */
    assert_true(atomic_load(&h.n_locks) - locks0 > w.runs);

    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
    assert_true(job_run(&job)); /* the host's device outlives vkllm's runtime */
    job_destroy(&job);
    if (atomic_load(&h.n_messages)) fail_msg("validation: %s", h.first);
    host_destroy(&h);
    vkllm_model_free(cpu_m);
    vkllm_runtime_destroy(cpu_rt);
}

/* A device made without optional features: vkllm must not use what was not enabled. The
 * queue comes from queue_index (queue NULL), and no lock: the host leaves it to vkllm. */
static void test_no_features(void **state) {
    (void)state;
    host h;
    host_create(&h, false);
    vkllm_vulkan_device hd = host_desc(&h, false);
    hd.queue = NULL;
    hd.queue_index = 0;
    vkllm_runtime_desc rd = {.vk_device = &hd, .n_threads = API_TEST_THREADS};
    vkllm_runtime *rt = NULL;
    if (vkllm_runtime_create(&rd, &rt) != VKLLM_OK)
        fail_msg("runtime: %s", vkllm_runtime_last_error(NULL));
    vkllm_device_info di = {0};
    vkllm_runtime_device(rt, &di);
    assert_int_equal(di.tier, 0);
    eval_and_free(load(rt));
    vkllm_runtime_destroy(rt);
    if (atomic_load(&h.n_messages)) fail_msg("validation: %s", h.first);
    host_destroy(&h);
}

static void expect_error(const vkllm_vulkan_device *hd, const char *device, const char *what) {
    vkllm_runtime_desc rd = {.vk_device = hd, .device = device};
    vkllm_runtime *rt = NULL;
    vkllm_status st = vkllm_runtime_create(&rd, &rt);
    if (st == VKLLM_OK) fail_msg("%s: accepted", what);
    const char *msg = vkllm_runtime_last_error(NULL);
    fprintf(stderr, "%s: %s\n", what, msg);
    assert_non_null(strstr(msg, "vk_device"));
}

static void test_bad_host(void **state) {
    (void)state;
    host h;
    host_create(&h, true);
    vkllm_vulkan_device hd = host_desc(&h, true);
    hd.device = NULL;
    expect_error(&hd, NULL, "no device");
    hd = host_desc(&h, true);
    hd.queue_family = 99;
    expect_error(&hd, NULL, "queue family 99");
    hd = host_desc(&h, true);
    hd.queue = NULL;
    hd.queue_index = 5;
    expect_error(&hd, NULL, "queue index 5");
    hd = host_desc(&h, true);
    hd.unlock_queue = NULL;
    expect_error(&hd, NULL, "lock without unlock");
    hd = host_desc(&h, true);
    hd.instance_api_version = VK_API_VERSION_1_0;
    expect_error(&hd, NULL, "a 1.0 instance");
    hd = host_desc(&h, true);
    expect_error(&hd, "cpu", "device cpu with vk_device");
    if (atomic_load(&h.n_messages)) fail_msg("validation: %s", h.first);
    host_destroy(&h);
}

/* vk_allocation_callbacks: every Vulkan object vkllm makes (its own instance and device
 * here) is allocated through the host's callbacks, and all of it is given back. */
typedef struct counting {
    atomic_long live, calls;
} counting;

/* Blocks carry their header size and length just below the pointer, so that free and realloc
 * need nothing else. */
static void *VKAPI_CALL c_alloc(void *user, size_t size, size_t align,
                                VkSystemAllocationScope scope) {
    (void)scope;
    counting *c = user;
    const size_t hdr = align > 16 ? align : 16;
    void *base = NULL;
    if (posix_memalign(&base, hdr, hdr + (size ? size : 1))) return NULL;
    char *p = (char *)base + hdr;
    memcpy(p - 16, &hdr, sizeof hdr);
    memcpy(p - 8, &size, sizeof size);
    atomic_fetch_add(&c->live, 1);
    atomic_fetch_add(&c->calls, 1);
    return p;
}

static void VKAPI_CALL c_free(void *user, void *p) {
    if (!p) return;
    size_t hdr;
    memcpy(&hdr, (char *)p - 16, sizeof hdr);
    atomic_fetch_sub(&((counting *)user)->live, 1);
    free((char *)p - hdr);
}

static void *VKAPI_CALL c_realloc(void *user, void *orig, size_t size, size_t align,
                                  VkSystemAllocationScope scope) {
    if (!orig) return c_alloc(user, size, align, scope);
    if (!size) {
        c_free(user, orig);
        return NULL;
    }
    void *p = c_alloc(user, size, align, scope);
    if (!p) return NULL;
    size_t old;
    memcpy(&old, (char *)orig - 8, sizeof old);
    memcpy(p, orig, old < size ? old : size);
    c_free(user, orig);
    return p;
}

static void test_allocation_callbacks(void **state) {
    (void)state;
    counting cnt = {0};
    const VkAllocationCallbacks ac = {.pUserData = &cnt,
                                      .pfnAllocation = c_alloc,
                                      .pfnReallocation = c_realloc,
                                      .pfnFree = c_free};
    vkllm_runtime_desc rd = {
        .device = "vulkan", .n_threads = API_TEST_THREADS, .vk_allocation_callbacks = &ac};
    vkllm_runtime *rt = NULL;
    if (vkllm_runtime_create(&rd, &rt) != VKLLM_OK)
        fail_msg("runtime: %s", vkllm_runtime_last_error(NULL));
    eval_and_free(load(rt));
    const long calls = atomic_load(&cnt.calls);
    vkllm_runtime_destroy(rt);
    fprintf(stderr, "Vulkan host allocations through the callbacks: %ld, live after destroy: %ld\n",
            calls, atomic_load(&cnt.live));
    assert_true(calls > 0);
    assert_int_equal(atomic_load(&cnt.live), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_device),
        cmocka_unit_test(test_no_features),
        cmocka_unit_test(test_bad_host),
        cmocka_unit_test(test_allocation_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
