/* vkllm public C API.
 *
 * Everything a program needs to load a GGUF model, tokenize, and generate text on the CPU or
 * Vulkan backend. Opaque handles, desc structs whose zero value means "default" (fill in only
 * what you want to change), every fallible call returns a vkllm_status, and each object keeps
 * the message of its last error. There is no global state: two runtimes in one process are
 * independent. Nothing else in the source tree is public.
 *
 * Threads. Any call may be made from any thread. What may run at the same time:
 *  - Different objects, from any number of threads: two runtimes are independent; the
 *    models, sessions and engines of one runtime may be used from different threads at once
 *    (they take turns on its device: one step, upload or context creation at a time).
 *  - One model: every call but vkllm_model_free, from several threads at once (tokens, chat
 *    templates, info, metadata, tensors; making sessions and engines; loading and freeing
 *    adapters, also while its engines run).
 *  - One session, one vkllm_sampler: one thread at a time; vkllm_session_cancel from any
 *    thread or a signal handler.
 *  - One engine: vkllm_submit, vkllm_engine_get_stats and the vkllm_request_* calls from any
 *    number of threads at once; vkllm_step from one at a time (another thread's call in the
 *    meantime fails with VKLLM_ERR_INVALID_ARG).
 *  - Destroy and free calls must not overlap another call on the object, or on what was made
 *    from it (free a model's sessions and engines first). Requests outlive their engine.
 *  - *_last_error: the message of the last failure on the object. When several threads use
 *    it, read it on the thread that got the failure, before its next call on the object.
 *
 * Callbacks, where they run and what they may call:
 *  - vkllm_request_desc.on_token: on the engine's thread (manual engines: the thread inside
 *    vkllm_step or vkllm_request_wait), one callback at a time per engine, with no vkllm lock
 *    held. It may call any function, e.g. vkllm_submit, vkllm_request_cancel and
 *    vkllm_request_free of any request (its own too), vkllm_engine_get_stats, vkllm_generate
 *    on a session of the same runtime. Except, on its own engine: vkllm_step, and
 *    vkllm_request_wait for a request not yet finished, fail with VKLLM_ERR_INVALID_ARG (they
 *    would wait for the thread they run on); vkllm_engine_destroy logs an error and does
 *    nothing. Once vkllm_request_free returns, the request's on_token is not called again
 *    (it waits for a call in progress on another thread: do not free a request where its
 *    callback could be waiting for you, e.g. while holding a lock the callback takes).
 *  - vkllm_request_desc.on_logprobs: as its on_token (the same thread, one at a time per
 *    engine, no lock held, the same calls allowed, never after vkllm_request_free returns),
 *    just before the on_token of the same token.
 *  - vkllm_generate_desc.on_token: on the thread in vkllm_generate, with no vkllm lock held.
 *    It may call anything but vkllm_generate, vkllm_session_eval, vkllm_session_reset and
 *    vkllm_session_destroy on the same session (vkllm_session_cancel is fine). Its
 *    on_logprobs: the same, just before the on_token of the same token.
 *  - The log callback and the allocator: from any thread vkllm works on (the caller's, an
 *    engine thread, the CPU backend's workers), from several at once, possibly while vkllm
 *    holds a lock of its own: they must be thread-safe and must not call into vkllm. (The
 *    Vulkan queue callbacks: see vkllm_vulkan_device.)
 */
#ifndef VKLLM_H
#define VKLLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported functions. The shared library exports these and nothing else. */
#if defined(_WIN32) && defined(VKLLM_BUILDING_SHARED)
#define VKLLM_API __declspec(dllexport)
#elif defined(_WIN32) && defined(VKLLM_SHARED)
#define VKLLM_API __declspec(dllimport)
#elif defined(__GNUC__) || defined(__clang__)
#define VKLLM_API __attribute__((visibility("default")))
#else
#define VKLLM_API
#endif

/* ---- versions and the ABI ------------------------------------------------------------------ *
 * The library's major version is its ABI version (the shared library's SONAME is
 * libvkllm.so.MAJOR): within one major version a host compiled against an older vkllm.h runs
 * against a newer library. Every desc, info and result struct starts with struct_size, so
 * fields can be appended without breaking such a host: the library reads (and writes) only
 * the first struct_size bytes. 0, the value of a zero-initialised struct, means the struct as
 * this major version first defined it; a host that sets a field
 * added later sets struct_size = sizeof(the struct). Nested structs (vkllm_allocator,
 * vkllm_sampling, vkllm_chat_message, vkllm_token_logprob, vkllm_vulkan_device's enabled
 * features) never grow. */
#define VKLLM_VERSION_MAJOR 0
#define VKLLM_VERSION_MINOR 3
#define VKLLM_VERSION_PATCH 0
#define VKLLM_MAKE_VERSION(major, minor, patch)                                                    \
    (((uint32_t)(major) << 22) | ((uint32_t)(minor) << 12) | (uint32_t)(patch))
#define VKLLM_VERSION                                                                              \
    VKLLM_MAKE_VERSION(VKLLM_VERSION_MAJOR, VKLLM_VERSION_MINOR, VKLLM_VERSION_PATCH)
#define VKLLM_VERSION_GET_MAJOR(v) ((uint32_t)(v) >> 22)
#define VKLLM_VERSION_GET_MINOR(v) (((uint32_t)(v) >> 12) & 0x3ffu)
#define VKLLM_VERSION_GET_PATCH(v) ((uint32_t)(v)&0xfffu)

/* ---- status codes ------------------------------------------------------------------------- */

typedef enum vkllm_status {
    VKLLM_OK = 0,
    VKLLM_ERR_INVALID_ARG = -1,       /* the caller passed something wrong: see the error message */
    VKLLM_ERR_OUT_OF_MEMORY = -2,     /* host or device allocation failed, or over the memory cap */
    VKLLM_ERR_IO = -3,                /* file could not be opened, read or mapped */
    VKLLM_ERR_BAD_FILE = -4,          /* model file is malformed (truncated, bad offsets, ...) */
    VKLLM_ERR_UNSUPPORTED = -5,       /* well formed, but not something vkllm can run */
    VKLLM_ERR_CONTEXT_FULL = -6,      /* the tokens do not fit in the session's context */
    VKLLM_ERR_NO_DEVICE = -7,         /* the requested backend/device is not available */
    VKLLM_ERR_CANCELLED = -8,         /* generation was cancelled by the caller */
    VKLLM_ERR_DEVICE = -9,            /* the device reported an error (lost, ...) */
    VKLLM_ERR_BUFFER_TOO_SMALL = -10, /* output buffer too small; the needed size is reported */
    VKLLM_ERR_INTERNAL = -11,         /* a bug in vkllm */
} vkllm_status;

/* Short constant text for a status ("out of memory"). Never NULL. */
VKLLM_API const char *vkllm_status_str(vkllm_status status);

/* ---- callbacks ---------------------------------------------------------------------------- */

/* Allocator callbacks. All host memory the library owns goes through these. A zero struct
 * means the C library's aligned allocation. alloc returns NULL on failure (a normal path).
 * Called from any of vkllm's threads, several at once: thread-safe, no calls into vkllm. */
typedef struct vkllm_allocator {
    void *(*alloc)(void *user, size_t size, size_t alignment);
    void (*free)(void *user, void *ptr);
    void *user;
} vkllm_allocator;

typedef enum vkllm_log_level {
    VKLLM_LOG_DEFAULT = 0, /* zero value: WARN */
    VKLLM_LOG_DEBUG = 1,
    VKLLM_LOG_INFO = 2,
    VKLLM_LOG_WARN = 3,
    VKLLM_LOG_ERROR = 4,
    VKLLM_LOG_NONE = 5,
} vkllm_log_level;

/* Log callback. msg is one line without a trailing newline. NULL callback: no output. Called
 * from any of vkllm's threads, several at once: thread-safe, no calls into vkllm. */
typedef void (*vkllm_log_fn)(void *user, vkllm_log_level level, const char *msg);

/* ---- runtime ------------------------------------------------------------------------------ */

typedef struct vkllm_runtime vkllm_runtime;
typedef struct vkllm_model vkllm_model;
typedef struct vkllm_session vkllm_session;

/* The host's own Vulkan device, for a runtime that shares it (a game engine's renderer, a
 * desktop app's compositor device). Dispatchable Vulkan handles are pointers, so they are
 * passed as void * and vkllm.h needs no Vulkan headers. vkllm creates its own buffers,
 * pipelines, command pools and fences on the device and destroys them at
 * vkllm_runtime_destroy; it never destroys the instance, device or queue it was given, and it
 * does not wait for the device to be idle, only for its own work.
 *
 * Requirements: the instance was created for Vulkan 1.1 or later (instance_api_version) and
 * the physical device supports 1.1. vkllm uses only the features and extensions the host
 * enabled: it reads enabled_features (the VkPhysicalDeviceFeatures2 chain given to
 * vkCreateDevice: VkPhysicalDeviceVulkan11/12/13Features, or the 16-bit storage, 8-bit
 * storage, float16/int8 and integer dot product feature structs) and enabled_extensions to
 * pick its capability tier (tier 1 needs storageBuffer16BitAccess, storageBuffer8BitAccess,
 * shaderFloat16 and shaderInt8; tier 2 also shaderIntegerDotProduct). With neither, vkllm runs
 * its tier-0 kernels (fp32, 32-bit storage), which every Vulkan 1.1 device can.
 *
 * Queues: vkllm submits to `queue` (or, when it is NULL, the queue vkGetDeviceQueue returns for
 * queue_family and queue_index), from the thread that drives the runtime's work. Vulkan
 * requires a queue's submissions to be externally synchronised: when the host also submits to
 * that queue, it passes lock_queue / unlock_queue, which vkllm calls around each of its
 * vkQueueSubmit calls (never while holding them across a wait). They may be called from any
 * thread vkllm works on and must not call into vkllm. A queue the host leaves to vkllm alone
 * needs no callbacks. */
typedef void (*vkllm_vk_void_fn)(void);
typedef struct vkllm_vulkan_device {
    uint32_t struct_size;          /* sizeof(vkllm_vulkan_device), or 0 */
    void *instance;                /* VkInstance */
    uint32_t instance_api_version; /* VkApplicationInfo.apiVersion of the instance; 0 = 1.1 */
    void *physical_device;         /* VkPhysicalDevice */
    void *device;                  /* VkDevice */
    uint32_t queue_family;         /* a family with VK_QUEUE_COMPUTE_BIT */
    uint32_t queue_index;          /* used when queue is NULL */
    void *queue;                   /* VkQueue, or NULL */
    /* PFN_vkGetInstanceProcAddr (the host's, e.g. from its own loader or volk); NULL: vkllm
     * takes it from libvulkan.so.1 */
    vkllm_vk_void_fn (*get_instance_proc_addr)(void *instance, const char *name);
    const void *enabled_features;          /* VkPhysicalDeviceFeatures2 * (with its pNext chain) */
    const char *const *enabled_extensions; /* device extensions the device was created with */
    uint32_t n_enabled_extensions;
    void (*lock_queue)(void *user);
    void (*unlock_queue)(void *user);
    void *queue_user;
} vkllm_vulkan_device;

typedef struct vkllm_runtime_desc {
    uint32_t struct_size; /* sizeof(vkllm_runtime_desc), or 0 (see "versions and the ABI") */
    vkllm_allocator allocator;
    vkllm_log_fn log;
    void *log_user;
    vkllm_log_level log_level;
    /* Worker threads for the CPU backend; 0 = one per online core. */
    int n_threads;
    /* Which backend: NULL or "auto" (best available), "cpu", "vulkan", "vulkan:N" (Nth Vulkan
     * device) or "vulkan:NAME" (first device whose name contains NAME); or a comma-separated
     * list of them for a model split over several devices ("vulkan:0,vulkan:1",
     * "vulkan,cpu"): each model's layers are then placed on the listed devices in order
     * (vkllm_model_desc.split, gpu_layers_plus1). A device may be listed twice (two logical
     * devices on one physical one); "auto" only alone. */
    const char *device;
    /* Highest Vulkan capability tier to use; 0 = the best the device has, N+1 = tier N. */
    int vk_tier_plus1;
    /* Upper bound on the memory the runtime's backend may hold, bytes; 0 = no cap. On Vulkan
     * the device memory it allocates (each Vulkan device's, with several); on the CPU the
     * models' weights (used in place from the file mapping, but counted) and the contexts' KV
     * caches and activations, where the CPU is the only device (beside a Vulkan device it is
     * the fallback and has no cap). A model larger than a Vulkan device's cap (or, without a
     * cap, its memory budget) is placed in part on the CPU (vkllm_model_placement says
     * where); past it, a context's creation fails with VKLLM_ERR_OUT_OF_MEMORY and a
     * message. */
    uint64_t memory_cap;
    /* The CPU backend's kernels: NULL or "auto" (the best the processor has), "scalar",
     * "avx2", "avx512" or "avx512vnni". Every SIMD set gives the same bits as "avx2"; this is
     * for benchmarks and tests. One the processor lacks is VKLLM_ERR_NO_DEVICE. */
    const char *cpu_isa;
    /* Vulkan devices whose fma() is not fused (CPU drivers such as lavapipe; a probe at
     * start-up tells) emulate the fused multiply-add in the matrix products by default, so that
     * they give the CPU backend's bits. true: the products use the device's own multiply and
     * add there instead (~1.5x faster 16-sequence decode on lavapipe); their results are then
     * within a few roundings per block of the CPU's (tests/test_vk_mm.c states the bound), and
     * still the same for a token alone or in a batch. No effect where fma() is fused (GPUs). */
    bool vk_relaxed_products;
    /* Run on the host's Vulkan device instead of creating one (device must then be NULL,
     * "auto" or "vulkan"). */
    const vkllm_vulkan_device *vk_device;
    /* VkAllocationCallbacks * for every Vulkan object vkllm creates (its own instance and
     * device too); NULL = the driver's allocator. Must outlive the runtime. */
    const void *vk_allocation_callbacks;
} vkllm_runtime_desc;

VKLLM_API vkllm_status vkllm_runtime_create(const vkllm_runtime_desc *desc, vkllm_runtime **out);
VKLLM_API void vkllm_runtime_destroy(vkllm_runtime *rt);
/* Message of the last error on this runtime (or on a create that failed: pass NULL to get the
 * message of the last failed vkllm_runtime_create in this thread). Never NULL. */
VKLLM_API const char *vkllm_runtime_last_error(const vkllm_runtime *rt);
/* Name of the backend in use, e.g. "cpu (avx2, 2 threads)"; a device list: each device's, " + "
 * between them. */
VKLLM_API const char *vkllm_runtime_backend_name(const vkllm_runtime *rt);

/* Devices a runtime could use. */
typedef struct vkllm_device_info {
    uint32_t struct_size; /* sizeof(vkllm_device_info), or 0 (see "versions and the ABI") */
    char name[256];
    char kind[32];      /* "cpu", "discrete-gpu", "integrated-gpu", "virtual-gpu", "cpu-vulkan" */
    char backend[16];   /* "cpu" or "vulkan" */
    char features[256]; /* space separated: "avx2 fma f16c", "fp16 int8 dot ..."; from
                         * vkllm_runtime_device also "unfused-fma" where the device's fma()
                         * is not fused (vk_relaxed_products matters there) */
    char driver[128];
    uint64_t memory_bytes; /* host memory (cpu) or the largest device-local heap (vulkan) */
    int index;             /* index within its backend: --device vulkan:INDEX */
    char vendor[32];       /* vulkan: AMD, NVIDIA, Intel, ARM, Qualcomm, Mesa, ... */
    char api_version[16];  /* vulkan: "1.3.230" */
    uint32_t subgroup_size;
    uint64_t max_buffer_bytes; /* vulkan: maxStorageBufferRange */
    int tier;                  /* vulkan capability tier 0..2; -1 for the CPU */
    bool relaxed_products;     /* vkllm_runtime_device only: vk_relaxed_products is in effect */
} vkllm_device_info;

/* Fills up to cap entries; *n_out gets the number of devices. */
VKLLM_API vkllm_status vkllm_list_devices(vkllm_device_info *infos, size_t cap, size_t *n_out);
/* The device a runtime runs on; for Vulkan, tier is the tier in use (after --vk-tier), for
 * the CPU, driver names the kernel table in use ("avx2", "scalar"). */
VKLLM_API void vkllm_runtime_device(const vkllm_runtime *rt, vkllm_device_info *out);

/* ---- model -------------------------------------------------------------------------------- */

typedef struct vkllm_model_desc {
    uint32_t struct_size; /* sizeof(vkllm_model_desc), or 0 (see "versions and the ABI") */
    const char *path;     /* GGUF file */
    bool vocab_only;      /* load metadata and tokenizer only (no weights needed in the file) */
    /* Partial offload, as llama.cpp's -ngl counts: the number of layers on the runtime's
     * Vulkan device(s), plus one. 0 (the default): every layer and the output head, as far as
     * the devices' memory allows. N + 1: the last N layers on the GPU(s); the token embedding
     * and the other layers on the CPU backend, and the output head there too unless every
     * layer is on the GPU. N above the layer count means all (the log says so). No effect on
     * a CPU runtime. */
    int gpu_layers_plus1;
    /* Shares of the layers for the runtime's listed devices (vkllm_runtime_desc.device), in
     * order, e.g. {3, 1}: three quarters on the first. NULL: equal shares. n_split must be
     * the number of listed devices; every share >= 0, their sum > 0. */
    const float *split;
    uint32_t n_split;
    /* Tokens of KV cache the placement keeps room for on each device beside its layers
     * (contexts larger than that may not fit where the layers went); 0: the training
     * context, at most 4096. */
    uint32_t n_ctx_hint;
} vkllm_model_desc;

VKLLM_API vkllm_status vkllm_model_load(vkllm_runtime *rt, const vkllm_model_desc *desc,
                                        vkllm_model **out);
VKLLM_API void vkllm_model_free(vkllm_model *model);

typedef struct vkllm_model_info {
    uint32_t struct_size;     /* sizeof(vkllm_model_info), or 0 (see "versions and the ABI") */
    const char *architecture; /* "llama" */
    const char *name;         /* general.name or "" */
    uint32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff;
    uint64_t n_params;
    uint64_t weight_bytes;
    uint64_t decode_weight_bytes; /* weight bytes one decode step reads: every matrix, but
                                   * only one row of a token embedding that is not also the
                                   * output head */
    int32_t bos, eos;             /* -1 if none */
    bool add_bos, add_eos;
    bool has_chat_template;
    const char *type;    /* the weights' type, as llama.cpp names a file's: "Q4_1"; from
                          * general.file_type, else the type of most matrix bytes */
    uint64_t file_bytes; /* size of the GGUF file */
} vkllm_model_info;

VKLLM_API void vkllm_model_get_info(const vkllm_model *model, vkllm_model_info *out);

/* Where a model's parts run: one entry per stage of consecutive layers, in layer order (one
 * entry for a model on a single device). */
typedef struct vkllm_placement {
    uint32_t struct_size;  /* sizeof(vkllm_placement), or 0 (see "versions and the ABI") */
    char device[32];       /* as vkllm_runtime_desc.device names it: "cpu", "vulkan:0" */
    char name[256];        /* the device's own name */
    uint32_t layer0;       /* first layer */
    uint32_t n_layers;     /* 0: a stage holding only the output head */
    bool embedding;        /* holds the token embedding */
    bool output;           /* holds the final norm and the output head */
    uint64_t weight_bytes; /* the model's weights this stage holds (file bytes) */
    /* Memory the runtime holds on this stage's device at the call, for every model and
     * context on it: device memory allocated (Vulkan), weights and context buffers (CPU). */
    uint64_t device_bytes;
} vkllm_placement;

/* Fills up to cap entries (an array of the caller's struct: the stride is out[0]'s
 * struct_size); *n_out gets the number of stages. */
VKLLM_API vkllm_status vkllm_model_placement(const vkllm_model *model, vkllm_placement *out,
                                             size_t cap, size_t *n_out);

/* Metadata, for `vkllm info`: key i and its value rendered as text (arrays are shortened). */
VKLLM_API size_t vkllm_model_meta_count(const vkllm_model *model);
/* Writes key i and its value, each NUL-terminated and cut to fit its buffer. */
VKLLM_API vkllm_status vkllm_model_meta(const vkllm_model *model, size_t i, char *key,
                                        size_t key_cap, char *value, size_t value_cap);
/* Tensor table. */
VKLLM_API size_t vkllm_model_tensor_count(const vkllm_model *model);
typedef struct vkllm_tensor_info {
    uint32_t struct_size; /* sizeof(vkllm_tensor_info), or 0 (see "versions and the ABI") */
    const char *name;
    const char *type; /* "q4_1", "f32", ... */
    uint32_t n_dims;
    uint64_t ne[4];
    uint64_t offset; /* relative to the start of the file's tensor data section */
    uint64_t nbytes;
    bool in_file; /* its data lies wholly inside the file (not so in a file cut short, which
                   * only a vocab-only load accepts) */
} vkllm_tensor_info;
VKLLM_API vkllm_status vkllm_model_tensor(const vkllm_model *model, size_t i,
                                          vkllm_tensor_info *out);

/* ---- tokens ------------------------------------------------------------------------------- */

enum {
    VKLLM_TOKENIZE_ADD_SPECIAL = 1u << 0,   /* add BOS/EOS as the model metadata says */
    VKLLM_TOKENIZE_PARSE_SPECIAL = 1u << 1, /* text like "<|im_start|>" becomes that token */
};

/* Text -> token ids. If cap is too small returns VKLLM_ERR_BUFFER_TOO_SMALL and *n_out is the
 * count needed. */
VKLLM_API vkllm_status vkllm_tokenize(vkllm_model *model, const char *text, size_t len,
                                      uint32_t flags, int32_t *ids, size_t cap, size_t *n_out);
/* Bytes of one token. Special tokens render as their text only if render_special. The bytes
 * of a multi-byte UTF-8 character may be split over tokens. */
VKLLM_API vkllm_status vkllm_token_to_piece(vkllm_model *model, int32_t id, bool render_special,
                                            char *buf, size_t cap, size_t *n_out);
/* Token ids -> text (concatenated pieces, special tokens rendered if render_special). */
VKLLM_API vkllm_status vkllm_detokenize(vkllm_model *model, const int32_t *ids, size_t n,
                                        bool render_special, char *buf, size_t cap, size_t *n_out);
/* True for end-of-generation tokens (EOS, EOT, <|im_end|>, ...). */
VKLLM_API bool vkllm_token_is_eog(const vkllm_model *model, int32_t id);

/* Chat template (from tokenizer.chat_template: ChatML, Llama 2, Llama 3). */
typedef struct vkllm_chat_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} vkllm_chat_message;
/* Renders the messages; add_assistant appends the assistant turn opener. */
VKLLM_API vkllm_status vkllm_chat_apply(vkllm_model *model, const vkllm_chat_message *msgs,
                                        size_t n, bool add_assistant, char *buf, size_t cap,
                                        size_t *n_out);

/* Message of the last error on this model. Never NULL. */
VKLLM_API const char *vkllm_model_last_error(const vkllm_model *model);

/* ---- LoRA adapters ------------------------------------------------------------------------ */

/* A LoRA adapter (Hu et al. 2021) for a model, in llama.cpp's GGUF format (general.type
 * "adapter", adapter.type "lora", adapter.lora.alpha, "<tensor>.lora_a" / ".lora_b" in F32 or
 * F16). A product W x of an adapted tensor becomes W x + s * B (A x), s = scale * alpha /
 * rank (scale when alpha is 0), as llama.cpp computes it. Any number may be loaded; sessions
 * and requests name the ones they use, and requests on different adapters share the engine's
 * steps. */
typedef struct vkllm_adapter vkllm_adapter;

typedef struct vkllm_adapter_desc {
    uint32_t struct_size; /* sizeof(vkllm_adapter_desc), or 0 (see "versions and the ABI") */
    const char *path;
    const char *name; /* NULL: the file's general.name, else its base name */
} vkllm_adapter_desc;

/* Loads an adapter for model (checked against its architecture and shapes; an error names
 * the tensor and the reason, in vkllm_model_last_error). Thread-safe, also while the model's
 * engines run. */
VKLLM_API vkllm_status vkllm_adapter_load(vkllm_model *model, const vkllm_adapter_desc *desc,
                                          vkllm_adapter **out);
/* Lets the adapter go: sessions and requests that use it keep it until they are done with it
 * (a session until its adapters change or it is destroyed, a request until it is freed). Any
 * thread. Free adapters before their model. */
VKLLM_API void vkllm_adapter_free(vkllm_adapter *a);
VKLLM_API const char *vkllm_adapter_name(const vkllm_adapter *a);
/* Rank (the largest over its tensors) and number of adapted tensors. */
VKLLM_API uint32_t vkllm_adapter_rank(const vkllm_adapter *a);
VKLLM_API uint32_t vkllm_adapter_n_tensors(const vkllm_adapter *a);

/* An adapter in use, with its scale (1 = as trained). */
typedef struct vkllm_lora {
    vkllm_adapter *adapter;
    float scale;
} vkllm_lora;

#define VKLLM_MAX_LORA 8 /* adapters one session or request uses at once */

/* ---- sessions and generation -------------------------------------------------------------- */

typedef struct vkllm_session_desc {
    uint32_t struct_size; /* sizeof(vkllm_session_desc), or 0 (see "versions and the ABI") */
    uint32_t n_ctx;       /* context length in tokens; 0 = min(training context, 4096) */
    uint32_t n_batch;     /* max tokens per prefill step; 0 = 512 */
} vkllm_session_desc;

VKLLM_API vkllm_status vkllm_session_create(vkllm_model *model, const vkllm_session_desc *desc,
                                            vkllm_session **out);
VKLLM_API void vkllm_session_destroy(vkllm_session *s);
VKLLM_API const char *vkllm_session_last_error(const vkllm_session *s);
/* Forget the KV cache. */
VKLLM_API void vkllm_session_reset(vkllm_session *s);
/* The adapters the session's evaluations use from now on (n = 0: none), each of the
 * session's model. A set that differs from the current one forgets the KV cache, which was
 * computed with the old one. */
VKLLM_API vkllm_status vkllm_session_set_lora(vkllm_session *s, const vkllm_lora *lora, size_t n);
/* Tokens in the KV cache, and the context size. */
VKLLM_API uint32_t vkllm_session_n_past(const vkllm_session *s);
VKLLM_API uint32_t vkllm_session_n_ctx(const vkllm_session *s);

/* Append tokens to the context and compute the logits of the last one. */
VKLLM_API vkllm_status vkllm_session_eval(vkllm_session *s, const int32_t *tokens, size_t n);
/* Logits (n_vocab floats) of the last token evaluated by vkllm_session_eval; valid until the
 * next eval. vkllm_generate may sample on the device (greedy, or top-k without a repetition
 * penalty) and then does not fetch the logits, so read them after vkllm_session_eval. */
VKLLM_API const float *vkllm_session_logits(const vkllm_session *s);

/* Sampling. Zero value = greedy. */
typedef struct vkllm_sampling {
    float temperature;     /* <= 0: greedy (argmax) */
    int32_t top_k;         /* 0: off */
    float top_p;           /* 0 or >= 1: off */
    float min_p;           /* 0: off */
    float repeat_penalty;  /* 0 or 1: off */
    int32_t repeat_last_n; /* tokens the penalty looks back over; 0 = 64 */
    uint64_t seed;         /* the same seed gives the same text */
} vkllm_sampling;

/* Called once per generated token. Return false to stop generation. piece is the token's text
 * (special tokens not rendered); it may be an incomplete UTF-8 sequence. */
typedef bool (*vkllm_token_fn)(void *user, int32_t token, const char *piece, size_t piece_len);

/* Log-probabilities, as OpenAI's `logprobs` (vkllm_generate_desc / vkllm_request_desc
 * on_logprobs). The distribution is the model's own at that position: the log-softmax of its
 * raw logits, log p(t) = l_t - log sum_j exp(l_j) (natural log, summed in double), before
 * anything the sampler does to them: the repetition, presence and frequency penalties, the
 * banned ids of ignore_eog (they may appear among the most likely), temperature, top-k, top-p
 * and min-p. So the figures do not depend on the sampling settings, as OpenAI's do not
 * (llama-server's n_probs reports the probabilities after its sampler chain instead). */
#define VKLLM_TOP_LOGPROBS_MAX 20
typedef struct vkllm_token_logprob {
    int32_t token;
    float logprob; /* <= 0; -INFINITY for a token the model gives no chance */
} vkllm_token_logprob;
/* Called once per sampled token (n_generated calls), before that token's on_token, and also
 * for a token that gets no on_token because it ends the request: an end-of-generation token,
 * or the one that completes a stop string. token and logprob: the sampled token; top: the
 * top_logprobs most likely tokens, most likely first (equal ones: the lower id first), fewer
 * only where fewer have a finite logit; valid during the call only. */
typedef void (*vkllm_logprobs_fn)(void *user, int32_t token, float logprob,
                                  const vkllm_token_logprob *top, uint32_t n_top);

typedef enum vkllm_stop_reason {
    VKLLM_STOP_NONE = 0,
    VKLLM_STOP_EOG,        /* the model produced an end-of-generation token */
    VKLLM_STOP_MAX_TOKENS, /* max_tokens reached */
    VKLLM_STOP_CALLBACK,   /* the callback returned false */
    VKLLM_STOP_CANCELLED,  /* vkllm_session_cancel */
    VKLLM_STOP_CONTEXT,    /* the context is full */
    VKLLM_STOP_STRING,     /* a stop string appeared (vkllm_request_desc.stop) */
    VKLLM_STOP_ERROR,      /* the request failed: see vkllm_request_result.status */
} vkllm_stop_reason;

typedef struct vkllm_generate_desc {
    uint32_t struct_size; /* sizeof(vkllm_generate_desc), or 0 (see "versions and the ABI") */
    /* The prompt: either text (tokenized with ADD_SPECIAL|PARSE_SPECIAL when the session is
     * empty, PARSE_SPECIAL only when continuing) or tokens. Both NULL: continue from the last
     * sampled token. */
    const char *prompt;
    size_t prompt_len; /* 0 = strlen(prompt) */
    const int32_t *tokens;
    size_t n_tokens;
    int32_t max_tokens; /* 0 = until end of generation or a full context */
    /* End-of-generation tokens (vkllm_token_is_eog: EOS, EOT, <|im_end|>, ...) are banned
     * from sampling, greedy or not, as llama.cpp's ignore_eos: the text goes on until
     * max_tokens or a full context. */
    bool ignore_eog;
    vkllm_sampling sampling;
    vkllm_token_fn on_token;
    void *user;
    /* -- appended: set struct_size = sizeof(vkllm_generate_desc) to use these -- */
    /* OpenAI's presence and frequency penalties, each in [-2, 2] (0: off; outside, or NaN:
     * VKLLM_ERR_INVALID_ARG): before sampling, each token's logit becomes
     *   logit - frequency_penalty * count - presence_penalty * (count > 0),
     * count = how often this call has generated the token so far. The prompt (and an earlier
     * call's text) does not count, as OpenAI's; llama-server's count the last 64 tokens of the
     * sequence instead (that window is sampling.repeat_penalty's here, applied first). */
    float presence_penalty;
    float frequency_penalty;
    /* Non-NULL: called with each sampled token's log-probability and the top_logprobs (0 to
     * VKLLM_TOP_LOGPROBS_MAX; more: VKLLM_ERR_INVALID_ARG) most likely tokens, with `user`.
     * Reads every logit of each step back from the device (no sampling there). */
    vkllm_logprobs_fn on_logprobs;
    uint32_t top_logprobs;
    /* Structured output (appended: set struct_size): NULL, or a JSON Schema the text
     * must follow. Only tokens that keep the text a prefix of a document the schema accepts
     * are sampled (greedy or not), end of generation only once it is whole, and generation
     * ends (VKLLM_STOP_EOG) when the document closes; max_tokens may still cut it short
     * (VKLLM_STOP_MAX_TOKENS). VKLLM_JSON_ANY_OBJECT: any JSON object. The subset:
     * type (object, array, string, number, integer, boolean, null, or a list), properties
     * (in their order; those not in required may be left out; no other keys), required,
     * additionalProperties (an object without properties: any keys), items, minItems,
     * maxItems, minLength, maxLength, enum, const, anyOf (branches that start differently),
     * annotations (title, description, ...); any other keyword ($ref, minimum, pattern, ...)
     * is an error that names it (VKLLM_ERR_INVALID_ARG, see the last error). No whitespace
     * around the document, at most 20 bytes in a gap inside it (docs/serve.md, "Structured
     * output"). */
    const char *json_schema;
} vkllm_generate_desc;

/* vkllm_generate_desc.json_schema / vkllm_request_desc.json_schema: any JSON object (what
 * OpenAI's response_format json_object asks for). "{}" or "true": any JSON value. */
#define VKLLM_JSON_ANY_OBJECT "{\"type\":\"object\"}"

typedef struct vkllm_generate_result {
    uint32_t struct_size; /* sizeof(vkllm_generate_result), or 0 (see "versions and the ABI") */
    uint32_t n_prompt;    /* prompt tokens evaluated */
    uint32_t n_generated; /* tokens sampled */
    double prefill_seconds;
    double decode_seconds;
    vkllm_stop_reason stop;
} vkllm_generate_result;

/* Evaluate the prompt, then sample tokens one by one, calling on_token for each (on this
 * thread, with no vkllm lock held). The sampled tokens stay in the context, so a later call
 * continues the conversation. A prompt that does not fit in the context fails with
 * VKLLM_ERR_CONTEXT_FULL before anything is evaluated. */
VKLLM_API vkllm_status vkllm_generate(vkllm_session *s, const vkllm_generate_desc *desc,
                                      vkllm_generate_result *result);
/* Ask a running vkllm_generate on this session to stop after the current token. Safe to call
 * from any thread or from a signal handler. */
VKLLM_API void vkllm_session_cancel(vkllm_session *s);

/* Standalone sampler over a logits vector, for programs that drive eval themselves. */
typedef struct vkllm_sampler vkllm_sampler;
VKLLM_API vkllm_status vkllm_sampler_create(vkllm_model *model, const vkllm_sampling *params,
                                            vkllm_sampler **out);
VKLLM_API void vkllm_sampler_destroy(vkllm_sampler *smp);
VKLLM_API int32_t vkllm_sampler_sample(vkllm_sampler *smp, const float *logits);
/* Tell the sampler a token is in the context (for the repetition penalty). */
VKLLM_API void vkllm_sampler_accept(vkllm_sampler *smp, int32_t token);

/* ---- serving many requests: the engine ------------------------------------------------- *
 * An engine runs any number of requests on one model with continuous batching: every step
 * takes one token from each sequence that is generating plus prompt chunks of the others, up
 * to a token budget, so the weights are read once for all of them; requests join and leave
 * between steps. The KV cache is paged (16-token pages from a memory budget); pages that hold
 * a full run of a prompt's tokens are kept in a prefix cache, so a request that starts like
 * an earlier one (a shared system prompt, a chat history) skips that part of its prefill.
 * When pages run out, admission waits, or the youngest sequence is preempted and recomputed
 * later: no request is dropped. Each request gets exactly the tokens it would get alone.
 *
 * Two ways to drive it: by default an engine thread runs steps whenever there is work (call
 * vkllm_request_wait, or poll vkllm_request_done); with `manual` set, nothing runs until the
 * host calls vkllm_step, e.g. once per frame with the time it can spare. */

typedef struct vkllm_engine vkllm_engine;
typedef struct vkllm_request vkllm_request;

typedef struct vkllm_engine_desc {
    uint32_t struct_size; /* sizeof(vkllm_engine_desc), or 0 (see "versions and the ABI") */
    uint32_t max_seqs;    /* sequences in flight at once; 0 = 16 */
    uint32_t n_ctx;       /* tokens one sequence may hold (prompt and output); 0 = min(training
                           * context, 4096) */
    uint32_t n_batch;     /* tokens per step, and the prompt chunk size; 0 = 512; at least
                           * max_seqs */
    uint64_t kv_bytes;    /* memory for the KV cache; 0 = room for max_seqs full sequences, at
                           * most 1 GiB; never less than one full sequence */
    uint32_t kv_pages;    /* or the number of 16-token pages; wins over kv_bytes */
    const char *kv_type;  /* "f16" (NULL: default) or "q8_0" (~half the memory; Vulkan
                             needs head_dim % 64 == 0) */
    bool no_prefix_cache; /* do not keep or reuse prompt pages */
    bool manual;          /* no engine thread: the host calls vkllm_step */
    bool no_overlap;      /* one step at a time: never submit the next step while one runs
                           * (on Vulkan, greedy decode steps are double-buffered by default) */
    /* Build every GPU kernel the engine's steps can use now, in vkllm_engine_create (seconds
     * on a CPU driver, far less with a GPU driver's warm pipeline cache), so that no
     * vkllm_step pays for one at the first step of a new shape: a host with a frame budget
     * sets it. No effect on the CPU backend. */
    bool warmup;
} vkllm_engine_desc;

/* The model must outlive the engine. */
VKLLM_API vkllm_status vkllm_engine_create(vkllm_model *model, const vkllm_engine_desc *desc,
                                           vkllm_engine **out);
/* Cancels what is still in flight, stops the engine thread, frees the engine. Requests not
 * yet freed stay readable (finished, VKLLM_STOP_CANCELLED) until vkllm_request_free. No other
 * thread may be in a call on the engine meanwhile; from inside one of its own callbacks it
 * logs an error and does nothing (it would wait for itself). */
VKLLM_API void vkllm_engine_destroy(vkllm_engine *e);
VKLLM_API const char *vkllm_engine_last_error(const vkllm_engine *e);

typedef struct vkllm_request_desc {
    uint32_t struct_size; /* sizeof(vkllm_request_desc), or 0 (see "versions and the ABI") */
    /* The prompt, one of: text (tokenized with ADD_SPECIAL | PARSE_SPECIAL), tokens, or chat
     * messages (rendered with the model's chat template and the assistant opener). */
    const char *prompt;
    size_t prompt_len; /* 0 = strlen(prompt) */
    const int32_t *tokens;
    size_t n_tokens;
    const vkllm_chat_message *messages;
    size_t n_messages;
    int32_t max_tokens; /* 0 = until end of generation or a full context */
    bool ignore_eog;    /* end-of-generation tokens are never sampled (vkllm_generate_desc) */
    vkllm_sampling sampling;
    const char *const *stop; /* stop strings: generation ends where one appears; the
                              * result text ends before it */
    size_t n_stop;
    /* Called for each generated token, on the engine thread (or inside vkllm_step), with no
     * vkllm lock held (see "Threads" at the top); return false to stop this request. */
    vkllm_token_fn on_token;
    void *user;
    /* -- appended: set struct_size = sizeof(vkllm_request_desc) to use these -- */
    /* OpenAI's penalties and log-probabilities, as in vkllm_generate_desc: the count is of
     * the tokens this request generated; on_logprobs is called with `user`, on the engine's
     * thread (see "Threads" at the top). A request with on_logprobs reads its full logits back
     * each step, so its steps sample on the host (the others' tokens stay the same). */
    float presence_penalty;
    float frequency_penalty;
    vkllm_logprobs_fn on_logprobs;
    uint32_t top_logprobs;
    /* Structured output (appended: set struct_size): as vkllm_generate_desc's. */
    const char *json_schema;
    /* LoRA adapters of the engine's model (appended: set struct_size), at most
     * VKLLM_MAX_LORA: the request holds them until it is freed. Prefix-cache pages are shared
     * only between requests with the same adapters and scales. */
    const vkllm_lora *lora;
    size_t n_lora;
} vkllm_request_desc;

typedef struct vkllm_request_result {
    uint32_t struct_size; /* sizeof(vkllm_request_result), or 0 (see "versions and the ABI") */
    vkllm_status status;  /* VKLLM_OK, or why the request failed */
    vkllm_stop_reason stop;
    uint32_t n_prompt;    /* prompt tokens */
    uint32_t n_cached;    /* of those, how many came from the prefix cache (not prefilled) */
    uint32_t n_generated; /* tokens sampled */
    uint32_t n_preempted; /* times the request was preempted and recomputed */
    double queue_seconds; /* submit to admission */
    double ttft_seconds;  /* submit to the first generated token */
    double total_seconds; /* submit to finish */
} vkllm_request_result;

/* Queues a request; the prompt is checked here (a prompt longer than n_ctx fails with
 * VKLLM_ERR_CONTEXT_FULL and no request is made). Thread-safe. */
VKLLM_API vkllm_status vkllm_submit(vkllm_engine *e, const vkllm_request_desc *desc,
                                    vkllm_request **out);
/* Stops a request at the next step (VKLLM_STOP_CANCELLED); any thread, any time. */
VKLLM_API void vkllm_request_cancel(vkllm_request *r);
VKLLM_API bool vkllm_request_done(const vkllm_request *r);
/* Waits until the request is finished (manual engines: runs steps until it is, or waits
 * while another thread is in vkllm_step) and fills *out (may be NULL); returns the request's
 * status. From inside a callback of the request's own engine, for a request not yet
 * finished: VKLLM_ERR_INVALID_ARG (it would wait for itself). */
VKLLM_API vkllm_status vkllm_request_wait(vkllm_request *r, vkllm_request_result *out);
/* The generated tokens and their text (without a stop string); NULL until done. */
VKLLM_API const int32_t *vkllm_request_tokens(const vkllm_request *r, size_t *n);
VKLLM_API const char *vkllm_request_text(const vkllm_request *r, size_t *len);
/* Cancels the request if it is still running; the engine lets go of it at its next step.
 * Its on_token is not called after this returns (a call in progress on the engine's thread is
 * waited for). Any thread, inside callbacks too. */
VKLLM_API void vkllm_request_free(vkllm_request *r);

/* Manual engines: does at most about budget_seconds of work and returns; a step in progress
 * continues where the last call left it; budget <= 0 runs one whole step. The CPU backend
 * stops between kernels. On a GPU a step is cut into segments (groups of layers, the output
 * head in row chunks), each timed on the device as it runs: a call submits only the segments
 * its times say finish before the budget ends, after vkllm's work still on the queue, so a
 * renderer sharing the queue is not held up behind a whole step; it returns at the end of the
 * budget. When nothing of vkllm's runs and the next segment does not fit (or was never
 * timed), it goes anyway, once per call: every call makes progress, and may overrun the
 * budget by one segment. *n_active (may be
 * NULL) gets the requests still queued or running. Fails (VKLLM_ERR_INVALID_ARG) on an engine
 * with a thread, while another thread is in vkllm_step (or vkllm_request_wait's steps), and
 * from inside one of the engine's own callbacks. */
VKLLM_API vkllm_status vkllm_step(vkllm_engine *e, double budget_seconds, uint32_t *n_active);

typedef struct vkllm_engine_stats {
    uint32_t struct_size; /* sizeof(vkllm_engine_stats), or 0 (see "versions and the ABI") */
    uint64_t steps;
    uint64_t tokens_prefilled; /* prompt (and recomputed) tokens run */
    uint64_t tokens_decoded;   /* tokens sampled */
    uint64_t tokens_cached;    /* prompt tokens taken from the prefix cache */
    uint64_t preemptions;
    uint64_t pages_evicted;    /* prefix-cache pages reused for other tokens */
    uint64_t steps_overlapped; /* steps submitted while the one before still ran */
    uint32_t pages_total, pages_used, pages_cached; /* cached: in the prefix cache, unused */
    uint32_t running, waiting;
} vkllm_engine_stats;
/* The counters as of the engine's last step (a snapshot it publishes); any thread, inside
 * callbacks too. */
VKLLM_API void vkllm_engine_get_stats(vkllm_engine *e, vkllm_engine_stats *out);

/* The model tools (synthetic models, quantization, importance matrices, perplexity, pruning)
 * and the measurement calls are in vkllm_tools.h, which this header includes at its end. */

/* The library's version, VKLLM_MAKE_VERSION(major, minor, patch): a host checks at run time
 * that VKLLM_VERSION_GET_MAJOR(vkllm_version()) == VKLLM_VERSION_MAJOR (the ABI it was
 * compiled for) and that the minor version is at least the one whose functions it uses. */
VKLLM_API uint32_t vkllm_version(void);

/* Where vkllm was built from: "0.2.0 (git abc1234)", "0.2.0 (git abc1234-dirty)". */
VKLLM_API const char *vkllm_version_string(void);

#ifdef __cplusplus
}
#endif

#include "vkllm_tools.h"

#endif /* VKLLM_H */
