/* Drawing: a swapchain, one render pass with one full-screen pipeline (apps/window/shaders:
 * the scene and the text panel in one fragment shader), two frames in flight each with its
 * own command buffer, fence and cell buffer, and the screenshot (the presented image copied to
 * a host-visible buffer, which is why the swapchain asks for VK_IMAGE_USAGE_TRANSFER_SRC_BIT).
 *
 * The queue is shared with vkllm, so every vkQueueSubmit / vkQueuePresentKHR / vkQueueWaitIdle
 * here is made under win_gpu.queue_mu, the mutex vkllm takes through lock_queue. */
#include "win.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char vk_spv_win_scene_vert[], vk_spv_win_scene_frag[];
extern const uint32_t vk_spv_win_scene_vert_size, vk_spv_win_scene_frag_size;

#define CHECK(call, what)                                                                          \
    do {                                                                                           \
        VkResult r_ = (call);                                                                      \
        if (r_ != VK_SUCCESS) {                                                                    \
            snprintf(err, err_cap, "%s failed (VkResult %d)", what, (int)r_);                      \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

win_layout win_layout_for(uint32_t width, uint32_t height, const win_font *f) {
    win_layout l;
    memset(&l, 0, sizeof l);
    l.scale = height >= 1000 ? 2 : 1; /* bigger letters on big windows */
    const int32_t margin = 16 * (int32_t)l.scale, pad = 10 * (int32_t)l.scale;
    /* the panel takes the right ~60% of the window; the scene shows on the left */
    l.panel_pos[0] = (int32_t)(width * 2 / 5);
    l.panel_pos[1] = margin;
    l.panel_size[0] = (int32_t)width - l.panel_pos[0] - margin;
    l.panel_size[1] = (int32_t)height - 2 * margin;
    l.text_pos[0] = l.panel_pos[0] + pad;
    l.text_pos[1] = l.panel_pos[1] + pad;
    const int32_t tw = l.panel_size[0] - 2 * pad, th = l.panel_size[1] - 2 * pad;
    l.cols = tw > 0 ? (uint32_t)tw / (f->width * l.scale) : 0;
    l.rows = th > 0 ? (uint32_t)th / (f->height * l.scale) : 0;
    if (l.cols > 1024) l.cols = 1024;
    return l;
}

static bool buf_create(win_render *r, win_buf *b, VkDeviceSize size, VkBufferUsageFlags usage,
                       char *err, size_t err_cap) {
    VkDevice dev = r->g->dev;
    memset(b, 0, sizeof *b);
    b->size = size;
    const VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                                   .size = size,
                                   .usage = usage,
                                   .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    CHECK(vkCreateBuffer(dev, &bi, NULL, &b->buf), "vkCreateBuffer");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(dev, b->buf, &req);
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(r->g->pdev, &mp);
    /* host-visible: the CPU writes the cells every frame and reads the screenshot back;
     * coherent where there is such memory, else flushed / invalidated by hand */
    uint32_t type = UINT32_MAX;
    const VkMemoryPropertyFlags want[2] = {VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                               VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                           VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT};
    for (int w = 0; w < 2 && type == UINT32_MAX; w++)
        for (uint32_t i = 0; i < mp.memoryTypeCount; i++)
            if ((req.memoryTypeBits & (1u << i)) &&
                (mp.memoryTypes[i].propertyFlags & want[w]) == want[w]) {
                type = i;
                b->coherent = w == 0;
                break;
            }
    if (type == UINT32_MAX) {
        snprintf(err, err_cap, "no host-visible memory for a buffer");
        return false;
    }
    const VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                     .allocationSize = req.size,
                                     .memoryTypeIndex = type};
    CHECK(vkAllocateMemory(dev, &ai, NULL, &b->mem), "vkAllocateMemory");
    CHECK(vkBindBufferMemory(dev, b->buf, b->mem, 0), "vkBindBufferMemory");
    CHECK(vkMapMemory(dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map), "vkMapMemory");
    return true;
}

static void buf_destroy(win_render *r, win_buf *b) {
    if (b->buf) vkDestroyBuffer(r->g->dev, b->buf, NULL);
    if (b->mem) vkFreeMemory(r->g->dev, b->mem, NULL); /* unmaps too */
    memset(b, 0, sizeof *b);
}

static void buf_sync(win_render *r, win_buf *b, bool to_device) {
    if (b->coherent) return;
    const VkMappedMemoryRange range = {
        .sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE, .memory = b->mem, .size = VK_WHOLE_SIZE};
    if (to_device)
        vkFlushMappedMemoryRanges(r->g->dev, 1, &range);
    else
        vkInvalidateMappedMemoryRanges(r->g->dev, 1, &range);
}

static void swapchain_release(win_render *r) {
    VkDevice dev = r->g->dev;
    for (uint32_t i = 0; i < r->n_images; i++) {
        if (r->fbs && r->fbs[i]) vkDestroyFramebuffer(dev, r->fbs[i], NULL);
        if (r->views && r->views[i]) vkDestroyImageView(dev, r->views[i], NULL);
        if (r->rendered && r->rendered[i]) vkDestroySemaphore(dev, r->rendered[i], NULL);
    }
    free(r->fbs);
    free(r->views);
    free(r->rendered);
    free(r->images);
    r->fbs = NULL;
    r->views = NULL;
    r->rendered = NULL;
    r->images = NULL;
    r->n_images = 0;
}

static bool choose_format(win_render *r, char *err, size_t err_cap) {
    uint32_t n = 0;
    vkGetPhysicalDeviceSurfaceFormatsKHR(r->g->pdev, r->g->surface, &n, NULL);
    VkSurfaceFormatKHR fm[64];
    if (n > 64) n = 64;
    CHECK(vkGetPhysicalDeviceSurfaceFormatsKHR(r->g->pdev, r->g->surface, &n, fm),
          "vkGetPhysicalDeviceSurfaceFormatsKHR");
    if (n == 0) {
        snprintf(err, err_cap, "the surface has no formats");
        return false;
    }
    /* UNORM: the shader's colours go to the screen as they are (and into the PNG) */
    r->format = fm[0].format;
    for (uint32_t i = 0; i < n; i++)
        if (fm[i].format == VK_FORMAT_B8G8R8A8_UNORM || fm[i].format == VK_FORMAT_R8G8B8A8_UNORM) {
            r->format = fm[i].format;
            break;
        }
    return true;
}

static bool swapchain_create(win_render *r, char *err, size_t err_cap) {
    win_gpu *g = r->g;
    VkSurfaceCapabilitiesKHR caps;
    CHECK(vkGetPhysicalDeviceSurfaceCapabilitiesKHR(g->pdev, g->surface, &caps),
          "vkGetPhysicalDeviceSurfaceCapabilitiesKHR");
    VkExtent2D ext = caps.currentExtent;
    if (ext.width == UINT32_MAX) {
        int w = 0, h = 0;
        glfwGetFramebufferSize(r->window, &w, &h);
        ext.width = (uint32_t)w;
        ext.height = (uint32_t)h;
    }
    if (ext.width < caps.minImageExtent.width) ext.width = caps.minImageExtent.width;
    if (ext.height < caps.minImageExtent.height) ext.height = caps.minImageExtent.height;
    if (ext.width > caps.maxImageExtent.width) ext.width = caps.maxImageExtent.width;
    if (ext.height > caps.maxImageExtent.height) ext.height = caps.maxImageExtent.height;
    uint32_t n_img = caps.minImageCount + 1;
    if (caps.maxImageCount && n_img > caps.maxImageCount) n_img = caps.maxImageCount;
    /* without vsync: mailbox or immediate, so frame times measure the work, not the display */
    uint32_t n_pm = 0;
    VkPresentModeKHR pm[16];
    vkGetPhysicalDeviceSurfacePresentModesKHR(g->pdev, g->surface, &n_pm, NULL);
    if (n_pm > 16) n_pm = 16;
    vkGetPhysicalDeviceSurfacePresentModesKHR(g->pdev, g->surface, &n_pm, pm);
    r->present_mode = VK_PRESENT_MODE_FIFO_KHR; /* always there */
    if (!r->vsync) {
        for (uint32_t i = 0; i < n_pm; i++)
            if (pm[i] == VK_PRESENT_MODE_IMMEDIATE_KHR) r->present_mode = pm[i];
        for (uint32_t i = 0; i < n_pm; i++)
            if (pm[i] == VK_PRESENT_MODE_MAILBOX_KHR) r->present_mode = pm[i];
    }
    r->can_screenshot =
        (caps.supportedUsageFlags & VK_IMAGE_USAGE_TRANSFER_SRC_BIT) &&
        (r->format == VK_FORMAT_B8G8R8A8_UNORM || r->format == VK_FORMAT_R8G8B8A8_UNORM);
    VkSwapchainKHR old = r->swapchain;
    const VkSwapchainCreateInfoKHR ci = {
        .sType = VK_STRUCTURE_TYPE_SWAPCHAIN_CREATE_INFO_KHR,
        .surface = g->surface,
        .minImageCount = n_img,
        .imageFormat = r->format,
        .imageColorSpace = VK_COLOR_SPACE_SRGB_NONLINEAR_KHR,
        .imageExtent = ext,
        .imageArrayLayers = 1,
        .imageUsage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT |
                      (r->can_screenshot ? VK_IMAGE_USAGE_TRANSFER_SRC_BIT : 0),
        .imageSharingMode = VK_SHARING_MODE_EXCLUSIVE,
        .preTransform = caps.currentTransform,
        .compositeAlpha = (caps.supportedCompositeAlpha & VK_COMPOSITE_ALPHA_OPAQUE_BIT_KHR)
                              ? VK_COMPOSITE_ALPHA_OPAQUE_BIT_KHR
                              : (VkCompositeAlphaFlagBitsKHR)(caps.supportedCompositeAlpha &
                                                              -caps.supportedCompositeAlpha),
        .presentMode = r->present_mode,
        .clipped = VK_TRUE,
        .oldSwapchain = old,
    };
    VkResult res = vkCreateSwapchainKHR(g->dev, &ci, NULL, &r->swapchain);
    if (old) vkDestroySwapchainKHR(g->dev, old, NULL);
    if (res != VK_SUCCESS) {
        r->swapchain = VK_NULL_HANDLE;
        snprintf(err, err_cap, "vkCreateSwapchainKHR failed (VkResult %d)", (int)res);
        return false;
    }
    r->extent = ext;
    CHECK(vkGetSwapchainImagesKHR(g->dev, r->swapchain, &r->n_images, NULL),
          "vkGetSwapchainImagesKHR");
    r->images = calloc(r->n_images, sizeof *r->images);
    r->views = calloc(r->n_images, sizeof *r->views);
    r->fbs = calloc(r->n_images, sizeof *r->fbs);
    r->rendered = calloc(r->n_images, sizeof *r->rendered);
    if (!r->images || !r->views || !r->fbs || !r->rendered) {
        snprintf(err, err_cap, "out of memory");
        return false;
    }
    CHECK(vkGetSwapchainImagesKHR(g->dev, r->swapchain, &r->n_images, r->images),
          "vkGetSwapchainImagesKHR");
    for (uint32_t i = 0; i < r->n_images; i++) {
        const VkImageViewCreateInfo vi = {
            .sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO,
            .image = r->images[i],
            .viewType = VK_IMAGE_VIEW_TYPE_2D,
            .format = r->format,
            .subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1},
        };
        CHECK(vkCreateImageView(g->dev, &vi, NULL, &r->views[i]), "vkCreateImageView");
        const VkFramebufferCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO,
                                            .renderPass = r->pass,
                                            .attachmentCount = 1,
                                            .pAttachments = &r->views[i],
                                            .width = ext.width,
                                            .height = ext.height,
                                            .layers = 1};
        CHECK(vkCreateFramebuffer(g->dev, &fi, NULL, &r->fbs[i]), "vkCreateFramebuffer");
        const VkSemaphoreCreateInfo si = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
        CHECK(vkCreateSemaphore(g->dev, &si, NULL, &r->rendered[i]), "vkCreateSemaphore");
    }
    r->layout = win_layout_for(ext.width, ext.height, r->f);
    return true;
}

/* Cell buffers big enough for the layout, and the descriptor sets pointing at them. */
static bool cells_ensure(win_render *r, char *err, size_t err_cap) {
    const uint32_t need = r->layout.cols * r->layout.rows > 0 ? r->layout.cols * r->layout.rows : 1;
    if (need <= r->cells_cap) return true;
    for (int i = 0; i < WIN_FRAMES_IN_FLIGHT; i++) {
        win_frame *fr = &r->frames[i];
        buf_destroy(r, &fr->cells);
        if (!buf_create(r, &fr->cells, (VkDeviceSize)need * 4, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                        err, err_cap))
            return false;
        const VkDescriptorBufferInfo bi[2] = {{fr->cells.buf, 0, VK_WHOLE_SIZE},
                                              {r->font.buf, 0, VK_WHOLE_SIZE}};
        VkWriteDescriptorSet w[2];
        for (uint32_t b = 0; b < 2; b++)
            w[b] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                          .dstSet = fr->set,
                                          .dstBinding = b,
                                          .descriptorCount = 1,
                                          .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                          .pBufferInfo = &bi[b]};
        vkUpdateDescriptorSets(r->g->dev, 2, w, 0, NULL);
    }
    r->cells_cap = need;
    return true;
}

static bool shot_ensure(win_render *r, char *err, size_t err_cap) {
    const VkDeviceSize need = (VkDeviceSize)r->extent.width * r->extent.height * 4;
    if (r->shot.buf && r->shot.size >= need) return true;
    buf_destroy(r, &r->shot);
    return buf_create(r, &r->shot, need, VK_BUFFER_USAGE_TRANSFER_DST_BIT, err, err_cap);
}

static VkShaderModule shader(VkDevice dev, const unsigned char *code, uint32_t size) {
    const VkShaderModuleCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                         .codeSize = size,
                                         .pCode = (const uint32_t *)(const void *)code};
    VkShaderModule m = VK_NULL_HANDLE;
    vkCreateShaderModule(dev, &ci, NULL, &m);
    return m;
}

static bool pipeline_create(win_render *r, char *err, size_t err_cap) {
    VkDevice dev = r->g->dev;
    const VkAttachmentDescription att = {
        .format = r->format,
        .samples = VK_SAMPLE_COUNT_1_BIT,
        .loadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE, /* the shader writes every pixel */
        .storeOp = VK_ATTACHMENT_STORE_OP_STORE,
        .stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE,
        .stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE,
        .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED,
        .finalLayout = VK_IMAGE_LAYOUT_PRESENT_SRC_KHR,
    };
    const VkAttachmentReference ref = {0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
    const VkSubpassDescription sub = {.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS,
                                      .colorAttachmentCount = 1,
                                      .pColorAttachments = &ref};
    /* the layout transition waits for the acquire semaphore (waited at this stage) */
    const VkSubpassDependency dep = {
        .srcSubpass = VK_SUBPASS_EXTERNAL,
        .dstSubpass = 0,
        .srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT,
        .dstStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT,
        .dstAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT,
    };
    const VkRenderPassCreateInfo rp = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO,
                                       .attachmentCount = 1,
                                       .pAttachments = &att,
                                       .subpassCount = 1,
                                       .pSubpasses = &sub,
                                       .dependencyCount = 1,
                                       .pDependencies = &dep};
    CHECK(vkCreateRenderPass(dev, &rp, NULL, &r->pass), "vkCreateRenderPass");

    VkDescriptorSetLayoutBinding b[2];
    for (uint32_t i = 0; i < 2; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                              .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1,
                                              .stageFlags = VK_SHADER_STAGE_FRAGMENT_BIT};
    const VkDescriptorSetLayoutCreateInfo sl = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = 2,
        .pBindings = b};
    CHECK(vkCreateDescriptorSetLayout(dev, &sl, NULL, &r->set_layout),
          "vkCreateDescriptorSetLayout");
    const VkPushConstantRange pcr = {VK_SHADER_STAGE_FRAGMENT_BIT, 0, sizeof(win_push)};
    const VkPipelineLayoutCreateInfo pl = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                           .setLayoutCount = 1,
                                           .pSetLayouts = &r->set_layout,
                                           .pushConstantRangeCount = 1,
                                           .pPushConstantRanges = &pcr};
    CHECK(vkCreatePipelineLayout(dev, &pl, NULL, &r->pipe_layout), "vkCreatePipelineLayout");

    VkShaderModule vs = shader(dev, vk_spv_win_scene_vert, vk_spv_win_scene_vert_size);
    VkShaderModule fs = shader(dev, vk_spv_win_scene_frag, vk_spv_win_scene_frag_size);
    const VkPipelineShaderStageCreateInfo st[2] = {
        {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
         .stage = VK_SHADER_STAGE_VERTEX_BIT,
         .module = vs,
         .pName = "main"},
        {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
         .stage = VK_SHADER_STAGE_FRAGMENT_BIT,
         .module = fs,
         .pName = "main"}};
    const VkPipelineVertexInputStateCreateInfo vin = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO};
    const VkPipelineInputAssemblyStateCreateInfo ia = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_INPUT_ASSEMBLY_STATE_CREATE_INFO,
        .topology = VK_PRIMITIVE_TOPOLOGY_TRIANGLE_LIST};
    const VkPipelineViewportStateCreateInfo vp = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_VIEWPORT_STATE_CREATE_INFO,
        .viewportCount = 1,
        .scissorCount = 1};
    const VkPipelineRasterizationStateCreateInfo rs = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_RASTERIZATION_STATE_CREATE_INFO,
        .polygonMode = VK_POLYGON_MODE_FILL,
        .cullMode = VK_CULL_MODE_NONE,
        .lineWidth = 1.0f};
    const VkPipelineMultisampleStateCreateInfo ms = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_MULTISAMPLE_STATE_CREATE_INFO,
        .rasterizationSamples = VK_SAMPLE_COUNT_1_BIT};
    const VkPipelineColorBlendAttachmentState cba = {.colorWriteMask = 0xF};
    const VkPipelineColorBlendStateCreateInfo cb = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_COLOR_BLEND_STATE_CREATE_INFO,
        .attachmentCount = 1,
        .pAttachments = &cba};
    const VkDynamicState dyn[2] = {VK_DYNAMIC_STATE_VIEWPORT, VK_DYNAMIC_STATE_SCISSOR};
    const VkPipelineDynamicStateCreateInfo ds = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_DYNAMIC_STATE_CREATE_INFO,
        .dynamicStateCount = 2,
        .pDynamicStates = dyn};
    const VkGraphicsPipelineCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_GRAPHICS_PIPELINE_CREATE_INFO,
        .stageCount = 2,
        .pStages = st,
        .pVertexInputState = &vin,
        .pInputAssemblyState = &ia,
        .pViewportState = &vp,
        .pRasterizationState = &rs,
        .pMultisampleState = &ms,
        .pColorBlendState = &cb,
        .pDynamicState = &ds,
        .layout = r->pipe_layout,
        .renderPass = r->pass,
    };
    VkResult res = vs && fs ? vkCreateGraphicsPipelines(dev, VK_NULL_HANDLE, 1, &pi, NULL, &r->pipe)
                            : VK_ERROR_INITIALIZATION_FAILED;
    if (vs) vkDestroyShaderModule(dev, vs, NULL);
    if (fs) vkDestroyShaderModule(dev, fs, NULL);
    CHECK(res, "creating the scene pipeline");
    return true;
}

static bool frames_create(win_render *r, char *err, size_t err_cap) {
    VkDevice dev = r->g->dev;
    const VkCommandPoolCreateInfo cp = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                        .queueFamilyIndex = r->g->qfam};
    CHECK(vkCreateCommandPool(dev, &cp, NULL, &r->cmd_pool), "vkCreateCommandPool");
    const VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 2 * WIN_FRAMES_IN_FLIGHT};
    const VkDescriptorPoolCreateInfo dp = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                           .maxSets = WIN_FRAMES_IN_FLIGHT,
                                           .poolSizeCount = 1,
                                           .pPoolSizes = &ps};
    CHECK(vkCreateDescriptorPool(dev, &dp, NULL, &r->pool), "vkCreateDescriptorPool");
    for (int i = 0; i < WIN_FRAMES_IN_FLIGHT; i++) {
        win_frame *fr = &r->frames[i];
        const VkCommandBufferAllocateInfo ca = {.sType =
                                                    VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                                .commandPool = r->cmd_pool,
                                                .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                                .commandBufferCount = 1};
        CHECK(vkAllocateCommandBuffers(dev, &ca, &fr->cmd), "vkAllocateCommandBuffers");
        const VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO,
                                      .flags = VK_FENCE_CREATE_SIGNALED_BIT};
        CHECK(vkCreateFence(dev, &fi, NULL, &fr->fence), "vkCreateFence");
        const VkSemaphoreCreateInfo si = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
        CHECK(vkCreateSemaphore(dev, &si, NULL, &fr->acquired), "vkCreateSemaphore");
        const VkDescriptorSetAllocateInfo sa = {.sType =
                                                    VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                                .descriptorPool = r->pool,
                                                .descriptorSetCount = 1,
                                                .pSetLayouts = &r->set_layout};
        CHECK(vkAllocateDescriptorSets(dev, &sa, &fr->set), "vkAllocateDescriptorSets");
    }
    return true;
}

/* X11 does not always report a new size through the swapchain (OUT_OF_DATE / SUBOPTIMAL):
 * GLFW's callback does. */
static void on_framebuffer_size(GLFWwindow *window, int w, int h) {
    (void)w;
    (void)h;
    win_render *r = glfwGetWindowUserPointer(window);
    if (r) r->resized = true;
}

bool win_render_create(win_render *r, win_gpu *g, GLFWwindow *window, const win_font *f, bool vsync,
                       char *err, size_t err_cap) {
    memset(r, 0, sizeof *r);
    r->g = g;
    r->window = window;
    glfwSetWindowUserPointer(window, r);
    glfwSetFramebufferSizeCallback(window, on_framebuffer_size);
    r->f = f;
    r->vsync = vsync;
    if (!choose_format(r, err, err_cap) || !pipeline_create(r, err, err_cap) ||
        !swapchain_create(r, err, err_cap) || !frames_create(r, err, err_cap))
        return false;
    /* the font as it is in the file, rounded up to whole 32-bit words for the shader */
    const VkDeviceSize fbytes = ((VkDeviceSize)f->n_glyphs * f->glyph_bytes + 3) & ~(VkDeviceSize)3;
    if (!buf_create(r, &r->font, fbytes, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, err, err_cap))
        return false;
    memset(r->font.map, 0, (size_t)fbytes);
    memcpy(r->font.map, f->glyphs, (size_t)f->n_glyphs * f->glyph_bytes);
    buf_sync(r, &r->font, true);
    return cells_ensure(r, err, err_cap);
}

void win_render_wait(win_render *r) {
    for (int i = 0; i < WIN_FRAMES_IN_FLIGHT; i++)
        if (r->frames[i].fence)
            vkWaitForFences(r->g->dev, 1, &r->frames[i].fence, VK_TRUE, UINT64_MAX);
}

void win_render_destroy(win_render *r) {
    if (!r->g) return;
    glfwSetFramebufferSizeCallback(r->window, NULL);
    glfwSetWindowUserPointer(r->window, NULL);
    VkDevice dev = r->g->dev;
    win_render_wait(r);
    /* presentation may still hold the last images: let the queue drain before destroying */
    pthread_mutex_lock(&r->g->queue_mu);
    vkQueueWaitIdle(r->g->queue);
    pthread_mutex_unlock(&r->g->queue_mu);
    for (int i = 0; i < WIN_FRAMES_IN_FLIGHT; i++) {
        win_frame *fr = &r->frames[i];
        if (fr->fence) vkDestroyFence(dev, fr->fence, NULL);
        if (fr->acquired) vkDestroySemaphore(dev, fr->acquired, NULL);
        buf_destroy(r, &fr->cells);
    }
    buf_destroy(r, &r->font);
    buf_destroy(r, &r->shot);
    if (r->cmd_pool) vkDestroyCommandPool(dev, r->cmd_pool, NULL);
    if (r->pool) vkDestroyDescriptorPool(dev, r->pool, NULL);
    swapchain_release(r);
    if (r->swapchain) vkDestroySwapchainKHR(dev, r->swapchain, NULL);
    if (r->pipe) vkDestroyPipeline(dev, r->pipe, NULL);
    if (r->pipe_layout) vkDestroyPipelineLayout(dev, r->pipe_layout, NULL);
    if (r->set_layout) vkDestroyDescriptorSetLayout(dev, r->set_layout, NULL);
    if (r->pass) vkDestroyRenderPass(dev, r->pass, NULL);
    memset(r, 0, sizeof *r);
}

static bool recreate(win_render *r, char *err, size_t err_cap) {
    int w = 0, h = 0;
    glfwGetFramebufferSize(r->window, &w, &h);
    while ((w == 0 || h == 0) && !glfwWindowShouldClose(r->window)) { /* minimised */
        glfwWaitEvents();
        glfwGetFramebufferSize(r->window, &w, &h);
    }
    win_render_wait(r);
    pthread_mutex_lock(&r->g->queue_mu);
    vkQueueWaitIdle(r->g->queue);
    pthread_mutex_unlock(&r->g->queue_mu);
    swapchain_release(r);
    return swapchain_create(r, err, err_cap) && cells_ensure(r, err, err_cap);
}

static void record(win_render *r, win_frame *fr, uint32_t img, float time, bool show_panel,
                   bool shot) {
    VkCommandBuffer cb = fr->cmd;
    const VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                         .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    vkBeginCommandBuffer(cb, &bi);
    const VkRenderPassBeginInfo rp = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO,
                                      .renderPass = r->pass,
                                      .framebuffer = r->fbs[img],
                                      .renderArea = {{0, 0}, r->extent}};
    vkCmdBeginRenderPass(cb, &rp, VK_SUBPASS_CONTENTS_INLINE);
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_GRAPHICS, r->pipe);
    const VkViewport vp = {0, 0, (float)r->extent.width, (float)r->extent.height, 0, 1};
    const VkRect2D sc = {{0, 0}, r->extent};
    vkCmdSetViewport(cb, 0, 1, &vp);
    vkCmdSetScissor(cb, 0, 1, &sc);
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_GRAPHICS, r->pipe_layout, 0, 1, &fr->set, 0,
                            NULL);
    const win_layout *l = &r->layout;
    const win_push pc = {
        .resolution = {(float)r->extent.width, (float)r->extent.height},
        .time = time,
        .show_panel = show_panel && l->cols > 0 && l->rows >= 3,
        .panel_pos = {l->panel_pos[0], l->panel_pos[1]},
        .panel_size = {l->panel_size[0], l->panel_size[1]},
        .text_pos = {l->text_pos[0], l->text_pos[1]},
        .cols = l->cols,
        .rows = l->rows,
        .glyph_w = r->f->width,
        .glyph_h = r->f->height,
        .glyph_bytes = r->f->glyph_bytes,
        .row_bytes = r->f->row_bytes,
        .scale = l->scale,
    };
    vkCmdPushConstants(cb, r->pipe_layout, VK_SHADER_STAGE_FRAGMENT_BIT, 0, sizeof pc, &pc);
    vkCmdDraw(cb, 3, 1, 0, 0);
    vkCmdEndRenderPass(cb);
    if (shot) {
        /* the image as it will be presented: out of PRESENT_SRC for the copy, then back */
        VkImageMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER,
                                  .srcAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT,
                                  .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
                                  .oldLayout = VK_IMAGE_LAYOUT_PRESENT_SRC_KHR,
                                  .newLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
                                  .srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
                                  .dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
                                  .image = r->images[img],
                                  .subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1}};
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT,
                             VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0, NULL, 0, NULL, 1, &b);
        const VkBufferImageCopy copy = {.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
                                        .imageExtent = {r->extent.width, r->extent.height, 1}};
        vkCmdCopyImageToBuffer(cb, r->images[img], VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
                               r->shot.buf, 1, &copy);
        b.srcAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
        b.dstAccessMask = 0;
        b.oldLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL;
        b.newLayout = VK_IMAGE_LAYOUT_PRESENT_SRC_KHR;
        const VkBufferMemoryBarrier hb = {.sType = VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER,
                                          .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
                                          .srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
                                          .dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
                                          .buffer = r->shot.buf,
                                          .size = VK_WHOLE_SIZE};
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0,
                             0, NULL, 1, &hb, 1, &b);
    }
    vkEndCommandBuffer(cb);
}

/* The copied image as RGB rows. */
static uint8_t *shot_rgb(win_render *r) {
    const uint32_t w = r->extent.width, h = r->extent.height;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!rgb) return NULL;
    buf_sync(r, &r->shot, false);
    const uint8_t *src = r->shot.map;
    const bool bgra = r->format == VK_FORMAT_B8G8R8A8_UNORM;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        rgb[i * 3 + 0] = src[i * 4 + (bgra ? 2 : 0)];
        rgb[i * 3 + 1] = src[i * 4 + 1];
        rgb[i * 3 + 2] = src[i * 4 + (bgra ? 0 : 2)];
    }
    return rgb;
}

win_draw_status win_render_frame(win_render *r, float time, const win_text *text, bool show_panel,
                                 uint8_t **rgb, char *err, size_t err_cap) {
    VkDevice dev = r->g->dev;
    win_frame *fr = &r->frames[r->frame];
    const bool shot = rgb != NULL;
    if (shot && !r->can_screenshot) {
        snprintf(err, err_cap,
                 "this surface's images cannot be copied (no TRANSFER_SRC usage "
                 "or not an 8-bit RGBA/BGRA format): no screenshot");
        return WIN_DRAW_ERROR;
    }
    if (r->resized) {
        r->resized = false;
        const uint32_t cols = r->layout.cols, rows = r->layout.rows;
        if (!recreate(r, err, err_cap)) return WIN_DRAW_ERROR;
        if (cols != r->layout.cols || rows != r->layout.rows) return WIN_DRAW_RESIZED;
    }
    if (shot && !shot_ensure(r, err, err_cap)) return WIN_DRAW_ERROR;
    vkWaitForFences(dev, 1, &fr->fence, VK_TRUE, UINT64_MAX);
    uint32_t img = 0;
    VkResult res =
        vkAcquireNextImageKHR(dev, r->swapchain, UINT64_MAX, fr->acquired, VK_NULL_HANDLE, &img);
    if (res == VK_ERROR_OUT_OF_DATE_KHR)
        return recreate(r, err, err_cap) ? WIN_DRAW_RESIZED : WIN_DRAW_ERROR;
    if (res != VK_SUCCESS && res != VK_SUBOPTIMAL_KHR) {
        snprintf(err, err_cap, "vkAcquireNextImageKHR failed (VkResult %d)", (int)res);
        return WIN_DRAW_ERROR;
    }
    vkResetFences(dev, 1, &fr->fence);
    if (text && text->cols == r->layout.cols && text->rows == r->layout.rows) {
        win_text_compose(text, fr->cells.map);
        buf_sync(r, &fr->cells, true);
    } else {
        show_panel = false; /* the text grid is being remade for a new size */
    }
    vkResetCommandBuffer(fr->cmd, 0);
    record(r, fr, img, time, show_panel, shot);
    const VkPipelineStageFlags wait_stage = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT;
    const VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                             .waitSemaphoreCount = 1,
                             .pWaitSemaphores = &fr->acquired,
                             .pWaitDstStageMask = &wait_stage,
                             .commandBufferCount = 1,
                             .pCommandBuffers = &fr->cmd,
                             .signalSemaphoreCount = 1,
                             .pSignalSemaphores = &r->rendered[img]};
    const VkPresentInfoKHR pi = {.sType = VK_STRUCTURE_TYPE_PRESENT_INFO_KHR,
                                 .waitSemaphoreCount = 1,
                                 .pWaitSemaphores = &r->rendered[img],
                                 .swapchainCount = 1,
                                 .pSwapchains = &r->swapchain,
                                 .pImageIndices = &img};
    pthread_mutex_lock(&r->g->queue_mu);
    res = vkQueueSubmit(r->g->queue, 1, &si, fr->fence);
    VkResult pres = res == VK_SUCCESS ? vkQueuePresentKHR(r->g->queue, &pi) : VK_SUCCESS;
    pthread_mutex_unlock(&r->g->queue_mu);
    r->frame = (r->frame + 1) % WIN_FRAMES_IN_FLIGHT;
    if (res != VK_SUCCESS) {
        snprintf(err, err_cap, "vkQueueSubmit failed (VkResult %d)", (int)res);
        return WIN_DRAW_ERROR;
    }
    if (shot) {
        vkWaitForFences(dev, 1, &fr->fence, VK_TRUE, UINT64_MAX);
        *rgb = shot_rgb(r);
        if (!*rgb) {
            snprintf(err, err_cap, "out of memory for the screenshot");
            return WIN_DRAW_ERROR;
        }
    }
    if (pres == VK_ERROR_OUT_OF_DATE_KHR || pres == VK_SUBOPTIMAL_KHR) {
        const uint32_t cols = r->layout.cols, rows = r->layout.rows;
        if (!recreate(r, err, err_cap)) return WIN_DRAW_ERROR;
        return cols != r->layout.cols || rows != r->layout.rows ? WIN_DRAW_RESIZED : WIN_DRAW_OK;
    }
    if (pres != VK_SUCCESS) {
        snprintf(err, err_cap, "vkQueuePresentKHR failed (VkResult %d)", (int)pres);
        return WIN_DRAW_ERROR;
    }
    return WIN_DRAW_OK;
}
