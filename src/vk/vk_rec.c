/* Recording compute work: a command buffer with its own descriptor pool, so a recorded step
 * keeps its descriptor sets and can be submitted again and again (replay), and is re-recorded
 * only when the batch shape changes.
 */
#include "vk/vk.h"

#include <string.h>

vkllm_status vk_rec_init(vk_dev *d, vk_rec *r, uint32_t max_sets, core_err *err) {
    memset(r, 0, sizeof *r);
    r->d = d;
    r->max_sets = max_sets;
    const VkCommandPoolCreateInfo cpi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = d->qfam,
    };
    VkResult res = d->t.vkCreateCommandPool(d->dev, &cpi, d->vkac, &r->cmd_pool);
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = r->cmd_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    if (res == VK_SUCCESS) res = d->t.vkAllocateCommandBuffers(d->dev, &ai, &r->cbs[0]);
    if (res == VK_SUCCESS) r->n_cbs = 1, r->cb = r->cbs[0];
    VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                               .descriptorCount = max_sets * VK_MAX_BINDINGS};
    VkDescriptorPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
        .maxSets = max_sets,
        .poolSizeCount = 1,
        .pPoolSizes = &ps,
    };
    if (res == VK_SUCCESS) res = d->t.vkCreateDescriptorPool(d->dev, &pci, d->vkac, &r->pool);
    if (res != VK_SUCCESS) {
        vk_rec_free(r);
        return core_errf(err, VKLLM_ERR_DEVICE, "command buffer: %s", vk_result_str(res));
    }
    return VKLLM_OK;
}

void vk_rec_free(vk_rec *r) {
    if (!r->d) return;
    vk_dev *d = r->d;
    if (r->pool) d->t.vkDestroyDescriptorPool(d->dev, r->pool, d->vkac);
    if (r->n_cbs) d->t.vkFreeCommandBuffers(d->dev, r->cmd_pool, r->n_cbs, r->cbs);
    if (r->cmd_pool) d->t.vkDestroyCommandPool(d->dev, r->cmd_pool, d->vkac);
    memset(r, 0, sizeof *r);
}

vkllm_status vk_rec_begin(vk_rec *r, core_err *err) {
    vk_dev *d = r->d;
    d->t.vkResetDescriptorPool(d->dev, r->pool, 0);
    r->cb = r->cbs[0];
    r->n_seg = 1;
    d->t.vkResetCommandBuffer(r->cb, 0);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    VkResult res = d->t.vkBeginCommandBuffer(r->cb, &bi);
    r->n_dispatch = 0;
    if (res != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_DEVICE, "vkBeginCommandBuffer: %s", vk_result_str(res));
    return VKLLM_OK;
}

vkllm_status vk_rec_split(vk_rec *r, core_err *err) {
    vk_dev *d = r->d;
    if (r->n_seg == VK_REC_MAX_SEGS)
        return core_errf(err, VKLLM_ERR_INTERNAL, "vulkan: more than %d segments", VK_REC_MAX_SEGS);
    vkllm_status st = vk_rec_end(r, err);
    if (st != VKLLM_OK) return st;
    if (r->n_seg == r->n_cbs) {
        VkCommandBufferAllocateInfo ai = {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
            .commandPool = r->cmd_pool,
            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
            .commandBufferCount = 1,
        };
        VkResult res = d->t.vkAllocateCommandBuffers(d->dev, &ai, &r->cbs[r->n_cbs]);
        if (res != VK_SUCCESS)
            return core_errf(err, VKLLM_ERR_DEVICE, "command buffer: %s", vk_result_str(res));
        r->n_cbs++;
    }
    r->cb = r->cbs[r->n_seg++];
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    VkResult res = d->t.vkBeginCommandBuffer(r->cb, &bi); /* resets it (the pool allows) */
    if (res != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_DEVICE, "vkBeginCommandBuffer: %s", vk_result_str(res));
    vk_rec_barrier(r); /* the segment before may have been submitted on its own */
    return VKLLM_OK;
}

vkllm_status vk_rec_end(vk_rec *r, core_err *err) {
    VkResult res = r->d->t.vkEndCommandBuffer(r->cb);
    if (res != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_DEVICE, "vkEndCommandBuffer: %s", vk_result_str(res));
    return VKLLM_OK;
}

vkllm_status vk_rec_dispatch(vk_rec *r, vk_pipe *p, const vk_slice *bind, uint32_t n_bind,
                             const void *push, uint32_t push_bytes, uint32_t gx, uint32_t gy,
                             uint32_t gz, core_err *err) {
    vk_dev *d = r->d;
    vkllm_status st = vk_pipe_ready(d, p, err);
    if (st != VKLLM_OK) return st;
    if (n_bind != p->n_bindings || push_bytes > VK_PUSH_BYTES)
        return core_errf(err, VKLLM_ERR_INTERNAL, "dispatch of '%s': %u bindings for %u", p->name,
                         n_bind, p->n_bindings);
    if (gx == 0 || gy == 0 || gz == 0) return VKLLM_OK; /* nothing to do */
    VkDescriptorSetAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
        .descriptorPool = r->pool,
        .descriptorSetCount = 1,
        .pSetLayouts = &p->dsl,
    };
    VkDescriptorSet set;
    VkResult res = d->t.vkAllocateDescriptorSets(d->dev, &ai, &set);
    if (res != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_INTERNAL, "descriptor set for '%s': %s", p->name,
                         vk_result_str(res));
    VkDescriptorBufferInfo bi[VK_MAX_BINDINGS];
    VkWriteDescriptorSet w[VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < n_bind; i++) {
        bi[i] = (VkDescriptorBufferInfo){bind[i].buf, bind[i].offset, bind[i].size};
        w[i] = (VkWriteDescriptorSet){
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
            .dstSet = set,
            .dstBinding = i,
            .descriptorCount = 1,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .pBufferInfo = &bi[i],
        };
    }
    d->t.vkUpdateDescriptorSets(d->dev, n_bind, w, 0, NULL);
    d->t.vkCmdBindPipeline(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
    d->t.vkCmdBindDescriptorSets(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0,
                                 NULL);
    if (push_bytes) {
        uint8_t pc[VK_PUSH_BYTES] = {0};
        memcpy(pc, push, push_bytes);
        d->t.vkCmdPushConstants(r->cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, VK_PUSH_BYTES,
                                pc);
    }
    d->t.vkCmdDispatch(r->cb, gx, gy, gz);
    r->n_dispatch++;
    return VKLLM_OK;
}

void vk_rec_barrier(vk_rec *r) {
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask =
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT,
    };
    r->d->t.vkCmdPipelineBarrier(
        r->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL,
        0, NULL);
}

vkllm_status vk_rec_submit_wait(vk_rec *r, VkFence fence, core_err *err) {
    vk_dev *d = r->d;
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = r->n_seg,
        .pCommandBuffers = r->cbs,
    };
    VkResult res = d->t.vkResetFences(d->dev, 1, &fence);
    if (res == VK_SUCCESS) res = vk_queue_submit(d, &si, fence);
    if (res == VK_SUCCESS) res = d->t.vkWaitForFences(d->dev, 1, &fence, VK_TRUE, UINT64_MAX);
    if (res != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_DEVICE, "vulkan step: %s%s", vk_result_str(res),
                         res == VK_ERROR_DEVICE_LOST ? " (device lost)" : "");
    return vk_check_validation(d, err);
}
