/* vkllm-window: a Vulkan window that renders an animated scene every frame while a language
 * model, sharing the window's VkDevice and queue, writes a story into a text panel.
 *
 * The pieces, one file each:
 *   main.c        options, the frame loop, frame times, the summary
 *   gfx_device.c  instance (+ validation), surface, physical device and queue, VkDevice
 *   gfx_render.c  swapchain, pipeline, per-frame resources, drawing, the screenshot
 *   story.c       vkllm on the demo's device: runtime, model, manual engine, story requests
 *   text.c        the panel's text: UTF-8, word wrap, scrolling, the glyph grid
 *   font.c        the PSF console font (embedded at build time) and its Unicode table
 *   png_write.c   the screenshot file
 * Only vkllm.h is used from vkllm: this program is what a game would write to embed it.
 */
#ifndef VKLLM_WINDOW_WIN_H
#define VKLLM_WINDOW_WIN_H

/* Vulkan first: glfw3.h declares its Vulkan functions (glfwCreateWindowSurface) only then */
#include <vulkan/vulkan.h>
#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkllm.h"

/* ---- font.c ---- */

typedef struct win_font {
    uint32_t width, height; /* glyph size, pixels */
    uint32_t row_bytes;     /* bytes per glyph row: (width + 7) / 8 */
    uint32_t glyph_bytes;   /* bytes per glyph */
    uint32_t n_glyphs;
    const uint8_t *glyphs; /* n_glyphs * glyph_bytes, MSB = leftmost pixel */
    uint16_t *map;         /* 0x10000 entries: code point -> glyph */
    uint16_t fallback;     /* glyph for a code point the font lacks ('?') */
} win_font;

/* Parses the PSF1 or PSF2 font embedded at build time. false (with a message) if malformed. */
bool win_font_load(win_font *f, char *err, size_t err_cap);
void win_font_free(win_font *f);
uint16_t win_font_glyph(const win_font *f, uint32_t cp);

/* ---- text.c ---- */

enum { WIN_INK_TEXT = 0, WIN_INK_STATUS = 1, WIN_INK_TITLE = 2, WIN_INK_DIM = 3 };

typedef struct win_text {
    const win_font *font;
    uint32_t cols, rows;         /* the whole grid: row 0 is the status line, then a rule */
    uint32_t story_rows;         /* rows below the status line and the rule */
    uint32_t *lines;             /* ring of story_rows lines of cols cells */
    uint32_t first;              /* ring index of the top visible line */
    uint32_t n_lines;            /* lines in use (<= story_rows) */
    uint32_t col;                /* next column on the last line */
    int32_t word_start;          /* column where the word being written began, -1 between words */
    uint32_t utf8_cp, utf8_need; /* a code point split over two pieces */
    uint32_t ink;                /* colour of what is being placed */
    char *log;                   /* the text so far, to wrap again at another size */
    size_t log_len, log_cap;
    uint32_t log_ink;
    char status[256];
} win_text;

bool win_text_init(win_text *t, const win_font *f);
/* (Re)makes the grid at this size and wraps the text so far into it; false if the panel is
 * too small for text (nothing is drawn then). */
bool win_text_layout(win_text *t, uint32_t cols, uint32_t rows);
void win_text_free(win_text *t);
/* Appends UTF-8 text (pieces may split a character); wraps at word boundaries, scrolls. */
void win_text_append(win_text *t, const char *s, size_t n, uint32_t ink);
void win_text_set_status(win_text *t, const char *s);
/* Writes the grid (status line, rule, story) as rows * cols cells: glyph | ink << 16. */
void win_text_compose(const win_text *t, uint32_t *cells);

/* ---- gfx_device.c ---- */

typedef struct win_gpu {
    VkInstance instance;
    uint32_t instance_api;
    VkDebugUtilsMessengerEXT messenger;
    bool validation;
    VkSurfaceKHR surface;
    VkPhysicalDevice pdev;
    VkPhysicalDeviceProperties props;
    uint32_t qfam;
    VkDevice dev;
    VkQueue queue;
    /* vkQueueSubmit and vkQueuePresentKHR need the queue to themselves: the demo and vkllm
     * both take this around theirs (vkllm through vkllm_vulkan_device.lock_queue) */
    pthread_mutex_t queue_mu;
    /* what was enabled, for vkllm_vulkan_device: the feature chain given to vkCreateDevice */
    VkPhysicalDeviceFeatures2 f2;
    VkPhysicalDeviceVulkan11Features f11;
    VkPhysicalDeviceVulkan12Features f12;
    VkPhysicalDeviceVulkan13Features f13;
    VkPhysicalDevice16BitStorageFeatures s16; /* a 1.1 device has no Vulkan11Features */
    const char *exts[4];
    uint32_t n_exts;
} win_gpu;

/* Instance (validation when VKLLM_VK_VALIDATION=1), surface for the window, a device with a
 * graphics + compute + present queue and the features vkllm's faster kernels use. */
bool win_gpu_create(win_gpu *g, GLFWwindow *window, char *err, size_t err_cap);
void win_gpu_destroy(win_gpu *g);
/* Validation messages received so far (the run fails if any). */
uint32_t win_gpu_validation_messages(void);
void win_gpu_lock_queue(void *user);
void win_gpu_unlock_queue(void *user);
/* The description vkllm needs to run on this device. */
void win_gpu_vkllm_device(win_gpu *g, vkllm_vulkan_device *out);

/* ---- gfx_render.c ---- */

#define WIN_FRAMES_IN_FLIGHT 2

typedef struct win_push {
    float resolution[2];
    float time;
    uint32_t show_panel;
    int32_t panel_pos[2], panel_size[2], text_pos[2];
    uint32_t cols, rows;
    uint32_t glyph_w, glyph_h, glyph_bytes, row_bytes;
    uint32_t scale;
} win_push;

typedef struct win_layout {
    int32_t panel_pos[2], panel_size[2], text_pos[2];
    uint32_t cols, rows, scale;
} win_layout;

typedef struct win_buf {
    VkBuffer buf;
    VkDeviceMemory mem;
    void *map;
    VkDeviceSize size;
    bool coherent;
} win_buf;

typedef struct win_frame {
    VkCommandBuffer cmd;
    VkFence fence;
    VkSemaphore acquired;
    win_buf cells;
    VkDescriptorSet set;
} win_frame;

typedef struct win_render {
    win_gpu *g;
    GLFWwindow *window;
    bool vsync;
    VkSwapchainKHR swapchain;
    VkFormat format;
    VkExtent2D extent;
    VkPresentModeKHR present_mode;
    uint32_t n_images;
    VkImage *images;
    VkImageView *views;
    VkFramebuffer *fbs;
    VkSemaphore *rendered; /* one per swapchain image: presentation may still hold a frame's */
    VkRenderPass pass;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout pipe_layout;
    VkPipeline pipe;
    VkDescriptorPool pool;
    VkCommandPool cmd_pool;
    win_buf font;
    win_frame frames[WIN_FRAMES_IN_FLIGHT];
    uint32_t frame; /* next frames[] slot */
    win_buf shot;   /* screenshot readback */
    bool can_screenshot;
    bool resized; /* the window's framebuffer changed size */
    win_layout layout;
    uint32_t cells_cap; /* cells each frame's buffer holds */
    const win_font *f;
} win_render;

bool win_render_create(win_render *r, win_gpu *g, GLFWwindow *window, const win_font *f, bool vsync,
                       char *err, size_t err_cap);
void win_render_destroy(win_render *r);
/* Where the panel goes in a window of this size (the text grid's columns and rows). */
win_layout win_layout_for(uint32_t width, uint32_t height, const win_font *f);
/* True when the swapchain was rebuilt at another size: the text grid must be remade. */
typedef enum { WIN_DRAW_OK, WIN_DRAW_RESIZED, WIN_DRAW_ERROR } win_draw_status;
/* Waits for the slot's last use, acquires an image, fills the cells, records, submits and
 * presents. With screenshot, the image is also copied out and *rgb (w * h * 3 bytes, malloc)
 * gets it after the frame is done. */
win_draw_status win_render_frame(win_render *r, float time, const win_text *text, bool show_panel,
                                 uint8_t **rgb, char *err, size_t err_cap);
/* Waits for the demo's own frames (not vkllm's work). */
void win_render_wait(win_render *r);

/* ---- story.c ---- */

typedef struct win_story win_story;
typedef struct win_story_desc {
    const char *model_path;
    const char *prompt;
    const char *system;
    uint64_t seed;
    float temperature;
    int32_t max_tokens;
} win_story_desc;
bool win_story_create(win_story **out, win_gpu *g, win_text *text, const win_story_desc *d,
                      char *err, size_t err_cap);
void win_story_destroy(win_story *s);
/* Starts the next story if the last one ended, then lets vkllm work for about budget. */
bool win_story_step(win_story *s, double budget_seconds, char *err, size_t err_cap);
uint64_t win_story_tokens(const win_story *s);
const char *win_story_backend(const win_story *s);

/* ---- png_write.c ---- */

/* Writes an 8-bit RGB PNG to path.tmp.PID and renames it to path. */
bool win_png_write(const char *path, const uint8_t *rgb, uint32_t w, uint32_t h, char *err,
                   size_t err_cap);

#endif
