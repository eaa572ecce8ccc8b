/* The Vulkan layer shared by src/vk/: device, memory, pipelines, op recording.
 *
 * Entry points are loaded at run time into the device's own tables (vk_fn.h: vk_dev.fn for the
 * instance, vk_dev.t for the device; nothing links libvulkan and nothing is global), so two
 * runtimes on two devices, or on the host's device beside the host's own loader, live side by
 * side.
 * Nothing here knows about models: vk_backend.c maps the engine's op list onto vk_ops.c.
 */
#ifndef VKLLM_VK_VK_H
#define VKLLM_VK_VK_H

#include "core/common.h"

#include "vk/vk_fn.h"

#include <pthread.h>
#include <stdatomic.h>

/* Capability tiers (docs/architecture.md): what a kernel variant may assume. */
enum {
    VK_TIER0 = 0, /* Vulkan 1.1 core: fp32 arithmetic, 32-bit storage only */
    VK_TIER1 = 1, /* + fp16 arithmetic, 8/16-bit storage, subgroup arithmetic */
    VK_TIER2 = 2, /* + integer dot product */
    VK_TIER_COUNT = 3,
};

/* What a physical device offers, read once at enumeration. */
typedef struct vk_dev_info {
    char name[256];
    char kind[32]; /* discrete-gpu, integrated-gpu, virtual-gpu, cpu-vulkan, other */
    char vendor[32];
    char driver[128]; /* driver name and version */
    char features[256];
    uint32_t vendor_id, device_id, api_version, driver_version;
    uint8_t uuid[VK_UUID_SIZE];
    uint64_t device_local_bytes; /* largest device-local heap */
    uint32_t subgroup_size;
    uint64_t max_buffer_range; /* maxStorageBufferRange */
    uint32_t max_shared;       /* maxComputeSharedMemorySize */
    uint32_t max_wg_invocations;
    uint32_t min_ssbo_align;
    bool fp16, int8, storage8, storage16, subgroup_arith, int_dot;
    int tier; /* best tier the device supports */
    int rank; /* choice order: lower is better */
} vk_dev_info;

/* Validation messages seen on a device, for the tests: any message fails the run. */
typedef struct vk_validation {
    bool enabled;
    atomic_uint n_messages; /* the messenger may be called on any thread using the device */
    char first[512];
} vk_validation;

typedef void (*vk_log_fn)(void *user, vkllm_log_level level, const char *msg);

typedef struct vk_dev_desc {
    const vkllm_allocator *alloc;
    vk_log_fn log;
    void *log_user;
    const char *select;  /* "vulkan", "vulkan:N", "vulkan:NAME", or NULL = best */
    int max_tier;        /* -1 = best the device has */
    uint64_t memory_cap; /* 0 = none */
    uint64_t max_buffer; /* 0 = the device's maxStorageBufferRange; less forces splits */
    const vkllm_vulkan_device *host;   /* the host's device, or NULL: vkllm makes its own */
    const VkAllocationCallbacks *vkac; /* for every Vulkan object; NULL = the driver's */
} vk_dev_desc;

typedef struct vk_dev {
    const vkllm_allocator *alloc;
    vk_log_fn log;
    void *log_user;
    vk_ifn fn; /* loader and instance entry points */
    vk_dfn t;  /* device entry points */
    const VkAllocationCallbacks *vkac;
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice pdev;
    VkDevice dev;
    bool own_instance, own_device; /* false: the host's (vk_dev_destroy leaves them alone) */
    VkQueue queue;
    uint32_t qfam;
    /* Vulkan wants a queue's submissions and a command pool's use externally synchronised:
     * queue_mu orders vkllm's own submissions (its threads may differ from call to call), and
     * the host's lock_queue, when it shares the queue, orders them against the host's. mu
     * guards cmd_pool (one-shot command buffers). */
    pthread_mutex_t queue_mu, mu;
    void (*lock_queue)(void *user);
    void (*unlock_queue)(void *user);
    void *queue_user;
    vk_dev_info info;
    int tier;            /* tier in use (<= info.tier) */
    int index;           /* position in vk_enumerate's order (--device vulkan:INDEX) */
    uint64_t max_buffer; /* largest buffer (binding range) we create */
    uint64_t memory_cap;
    _Atomic uint64_t allocated; /* device memory allocated so far */
    bool fma_exact;             /* fma() is not fused here: shaders emulate it (EXACT_FMA) */
    atomic_uint pipes_built;    /* pipelines compiled so far (tests: what a warm-up left to do) */
    uint32_t mem_type_device, mem_type_host; /* memory type indices */
    bool host_coherent;
    VkCommandPool cmd_pool;
    VkPipelineCache pipe_cache;
    char cache_path[512];
    vk_validation val;
} vk_dev;

/* Lists the physical devices, best first. */
vkllm_status vk_enumerate(vk_dev_info *out, uint32_t cap, uint32_t *n, core_err *err);
/* The public description of a device (vkllm_list_devices, vkllm_runtime_device). */
void vk_dev_info_public(const vk_dev_info *vi, int index, int tier, vkllm_device_info *out);
vkllm_status vk_dev_create(const vk_dev_desc *desc, vk_dev **out, core_err *err);
#define VK_MAX_PDEV 16 /* physical devices vkllm looks at */
/* Shared by vk_device.c and vk_host.c: the instance's 1.1 devices, best first (at most 16);
 * the device's entry points; memory types and the one-shot command pool; attaching to the
 * host's objects instead of creating them. */
vkllm_status vk_list_pdevs(const vk_ifn *f, VkInstance inst, VkPhysicalDevice *pd,
                           vk_dev_info *info, uint32_t *n, core_err *err);
vkllm_status vk_dev_load(vk_dev *d, core_err *err);
vkllm_status vk_dev_finish(vk_dev *d, core_err *err);
vkllm_status vk_host_attach(vk_dev *d, const vkllm_vulkan_device *h, core_err *err);
void vk_dev_destroy(vk_dev *d);
void vk_log(const vk_dev *d, vkllm_log_level level, const char *fmt, ...) CORE_PRINTF(3, 4);
/* Device memory this runtime may still allocate on d: under its memory cap when it has one,
 * else the budget VK_EXT_memory_budget reports for the heap of its device-local memory type
 * (where the device has the extension), else that heap's size less a margin of a tenth (at
 * least 256 MiB: other programs, the driver) less what this runtime holds. *how names the
 * source, for the log. */
uint64_t vk_dev_room(vk_dev *d, const char **how);
/* VKLLM_ERR_DEVICE with the first validation message if any arrived since creation. */
vkllm_status vk_check_validation(vk_dev *d, core_err *err);
/* A VkResult as text. */
const char *vk_result_str(VkResult r);
/* Submits to the device's queue under its locks (queue_mu and the host's lock_queue). */
VkResult vk_queue_submit(vk_dev *d, const VkSubmitInfo *si, VkFence fence);
/* One-shot command buffer: begin, (caller records), submit and wait; begin holds d->mu until
 * end (or a failed begin) releases it. */
vkllm_status vk_oneshot_begin(vk_dev *d, VkCommandBuffer *cb, core_err *err);
vkllm_status vk_oneshot_end(vk_dev *d, VkCommandBuffer cb, core_err *err);

/* ---- memory (vk_mem.c) ---- */

/* A buffer with its own memory: one per arena (a large block, sub-allocated). */
typedef struct vk_buffer {
    VkBuffer buf;
    VkDeviceMemory mem;
    uint64_t size;
    void *map; /* host-visible buffers only */
} vk_buffer;

/* A byte range of a buffer: what a descriptor binds. */
typedef struct vk_slice {
    VkBuffer buf;
    uint64_t offset, size;
    void *map; /* host pointer of the range, host-visible only */
} vk_slice;

/* Sub-allocates ranges from buffers of up to dev->max_buffer bytes, allocating a new
 * buffer when the current one is full. A range never straddles two buffers. */
typedef struct vk_arena {
    vk_dev *d;
    bool host; /* host-visible (params, readback, staging) instead of device-local */
    uint64_t block;
    vk_buffer *bufs;
    uint32_t n_bufs, cap_bufs;
    uint64_t used; /* in the last buffer */
    const char *what;
    /* what the owner expects to allocate in all (0: unknown), and what it has: a new block is
     * no larger than what is still expected (the last one of a model's weights is not a whole
     * block of mostly nothing) */
    uint64_t expect, placed;
} vk_arena;

vkllm_status vk_buffer_create(vk_dev *d, uint64_t size, bool host, vk_buffer *out, const char *what,
                              core_err *err);
void vk_buffer_destroy(vk_dev *d, vk_buffer *b);
void vk_arena_init(vk_arena *a, vk_dev *d, bool host, uint64_t block, const char *what);
vkllm_status vk_arena_alloc(vk_arena *a, uint64_t size, vk_slice *out, core_err *err);
void vk_arena_free(vk_arena *a);
/* Copies host bytes into a device slice through a staging buffer. */
vkllm_status vk_upload(vk_dev *d, const vk_slice *dst, const void *src, uint64_t size,
                       core_err *err);
vkllm_status vk_download(vk_dev *d, const vk_slice *src, void *dst, uint64_t size, core_err *err);

/* ---- pipelines (vk_pipe.c) ---- */

#define VK_MAX_BINDINGS 8
#define VK_PUSH_BYTES 128 /* the minimum maxPushConstantsSize every device has */

typedef struct vk_spec {
    uint32_t n;
    uint32_t v[8]; /* specialization constants 0..n-1 */
    /* EXACT_FMA off even where fma() is not fused (vk_dev.fma_exact): the shader's fma() is
     * then the device's own, a multiply and an add there (vk_mm's relaxed products) */
    bool plain_fma;
} vk_spec;

typedef struct vk_pipe {
    const char *name;
    uint32_t n_bindings;
    uint32_t local_size[3];
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipeline pipe; /* VK_NULL_HANDLE while deferred (vk_pipe_defer) */
    vk_spec spec;    /* what a deferred pipeline is built with */
} vk_pipe;

/* Builds the pipeline of an embedded shader (by name, e.g. "swiglu_t0"). local_size[0..2]
 * are set through specialization constants 100..102 when non-zero. */
vkllm_status vk_pipe_create(vk_dev *d, const char *shader, uint32_t n_bindings,
                            const uint32_t local_size[3], const vk_spec *spec, vk_pipe *out,
                            core_err *err);
/* The same, deferred: checks that the shader exists and keeps the parameters; the driver
 * compiles it (vk_pipe_ready) when a dispatch first records it, so a start-up compiles only the
 * kernels it uses (lavapipe compiles a kernel in 5-90 ms, and its Vulkan pipeline cache is
 * empty: only Mesa's own shader cache, when warm, saves that). */
vkllm_status vk_pipe_defer(vk_dev *d, const char *shader, uint32_t n_bindings,
                           const uint32_t local_size[3], const vk_spec *spec, vk_pipe *out,
                           core_err *err);
/* Builds a deferred pipeline if it is not built yet. */
vkllm_status vk_pipe_ready(vk_dev *d, vk_pipe *p, core_err *err);
void vk_pipe_destroy(vk_dev *d, vk_pipe *p);
/* Loads the on-disk pipeline cache of this device (a bad file is ignored with a notice). */
vkllm_status vk_pipe_cache_open(vk_dev *d, core_err *err);
/* Writes the cache back. Errors are logged, not returned: a cache is an optimisation. */
void vk_pipe_cache_save(vk_dev *d);

/* Embedded SPIR-V (generated at build time from shaders/). */
typedef struct vk_shader_blob {
    const char *name;
    const uint32_t *code;
    const uint32_t *size; /* bytes */
} vk_shader_blob;
const vk_shader_blob *vk_shader_find(const char *name);

/* ---- recording (vk_rec.c) ---- */

/* Descriptor sets for one recorded command buffer come from its own pool. A recording may be
 * cut into segments (vk_rec_split), command buffers submitted one after another, so that a
 * host sharing the queue can interleave its own work between them (vk_backend.c's paced
 * steps). */
#define VK_REC_MAX_SEGS 40
typedef struct vk_rec {
    vk_dev *d;
    VkCommandPool cmd_pool; /* its own: recording needs its pool to itself */
    VkCommandBuffer cb;     /* the segment being recorded */
    VkCommandBuffer cbs[VK_REC_MAX_SEGS];
    uint32_t n_cbs; /* allocated */
    uint32_t n_seg; /* segments recorded since vk_rec_begin: cbs[0 .. n_seg) */
    VkDescriptorPool pool;
    uint32_t max_sets;
    uint32_t n_dispatch;
} vk_rec;

vkllm_status vk_rec_init(vk_dev *d, vk_rec *r, uint32_t max_sets, core_err *err);
void vk_rec_free(vk_rec *r);
/* Resets and begins recording (one segment). */
vkllm_status vk_rec_begin(vk_rec *r, core_err *err);
/* Ends the current segment and begins the next one, which starts with a barrier after all
 * earlier work on the queue. */
vkllm_status vk_rec_split(vk_rec *r, core_err *err);
vkllm_status vk_rec_end(vk_rec *r, core_err *err);
/* Binds the slices, pushes the constants and dispatches groups (x, y, z). */
vkllm_status vk_rec_dispatch(vk_rec *r, vk_pipe *p, const vk_slice *bind, uint32_t n_bind,
                             const void *push, uint32_t push_bytes, uint32_t gx, uint32_t gy,
                             uint32_t gz, core_err *err);
/* A compute -> compute (and transfer) memory barrier between dependent dispatches. */
void vk_rec_barrier(vk_rec *r);
/* Submits the recorded segments and waits on a fence (no vkDeviceWaitIdle). */
vkllm_status vk_rec_submit_wait(vk_rec *r, VkFence fence, core_err *err);

#endif
