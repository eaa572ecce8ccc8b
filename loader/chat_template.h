/* Chat formats the shipped models use, chosen from tokenizer.chat_template.
 *
 * We do not run Jinja: we recognise the template family by its distinctive markers (ChatML's
 * <|im_start|>, Llama 3's <|start_header_id|>, Llama 2's [INST]) and render that format in C,
 * including a default system prompt that the template hard-codes (as SmolLM2's does).
 */
#ifndef VKLLM_LOADER_CHAT_TEMPLATE_H
#define VKLLM_LOADER_CHAT_TEMPLATE_H

#include "core/common.h"

typedef enum chat_format {
    CHAT_FORMAT_UNKNOWN = 0,
    CHAT_FORMAT_CHATML,
    CHAT_FORMAT_LLAMA2,
    CHAT_FORMAT_LLAMA3,
} chat_format;

/* Detects the format from the template text (NULL or "" -> CHATML as a fallback). */
chat_format chat_detect(const char *tmpl, size_t len);
const char *chat_format_name(chat_format fmt);

/* Renders messages. tmpl is used to find a hard-coded default system prompt. Output is
 * NUL-terminated if cap > 0; *n_out is the length needed (without NUL).
 * Returns VKLLM_ERR_BUFFER_TOO_SMALL if cap <= needed. */
vkllm_status chat_render(chat_format fmt, const char *tmpl, size_t tmpl_len,
                         const vkllm_chat_message *msgs, size_t n, bool add_assistant,
                         const char *bos_text, char *buf, size_t cap, size_t *n_out);

#endif
