/* Tokenizers from GGUF metadata, with the same ids as llama.cpp.
 *
 * tokenizer.ggml.model "gpt2": byte-level BPE with the pre-tokenizer that tokenizer.ggml.pre
 * selects (llama-bpe / llama3, gpt-2, smollm, ...); "llama": SentencePiece-style BPE with
 * scores and byte fallback. Special/control tokens are matched in text when parse_special.
 * No Vulkan and no model weights here.
 */
#ifndef VKLLM_LOADER_TOKENIZER_H
#define VKLLM_LOADER_TOKENIZER_H

#include "core/common.h"
#include "loader/gguf.h"

typedef struct tok_vocab tok_vocab;

vkllm_status tok_load(const gguf_file *f, const vkllm_allocator *a, tok_vocab **out, core_err *err);
void tok_free(tok_vocab *v);

/* text -> ids. add_special adds BOS (and EOS) as the metadata says (tokenizer.ggml.add_bos_token,
 * add_eos_token, and the model type's default). parse_special turns the text of special and
 * control tokens into those tokens; user-defined tokens are matched either way, as in
 * llama.cpp. If cap is too small, returns VKLLM_ERR_BUFFER_TOO_SMALL and *n_out is the number
 * needed (the ids that fit are written). Any bytes are accepted: invalid UTF-8 is tokenized
 * the way llama.cpp does. */
vkllm_status tok_encode(const tok_vocab *v, const char *text, size_t len, bool add_special,
                        bool parse_special, int32_t *ids, size_t cap, size_t *n_out, core_err *err);
/* Bytes of one token (byte-level decoding for gpt2, "▁" -> " " and <0xXX> bytes for llama).
 * Control tokens give "" unless render_special. Returns bytes needed (may exceed cap, in which
 * case nothing past cap is written); ids out of range give 0. */
size_t tok_piece(const tok_vocab *v, int32_t id, bool render_special, char *buf, size_t cap);

uint32_t tok_n_vocab(const tok_vocab *v);
int32_t tok_bos(const tok_vocab *v); /* -1 if none */
int32_t tok_eos(const tok_vocab *v);
bool tok_add_bos(const tok_vocab *v);
bool tok_add_eos(const tok_vocab *v);
/* End of generation: EOS, EOT, <|im_end|>, <|eot_id|>, <|end_of_text|> ... */
bool tok_is_eog(const tok_vocab *v, int32_t id);
/* The end-of-generation ids (those tok_is_eog accepts), ascending; *n gets their count. */
const int32_t *tok_eog_ids(const tok_vocab *v, uint32_t *n);
bool tok_is_control(const tok_vocab *v, int32_t id);
/* The token's text as stored in the vocab (not decoded), for debugging. */
gguf_str tok_text(const tok_vocab *v, int32_t id);

/* The pre-tokenizer in use: "default", "gpt-2", "llama3", "qwen2", "qwen35", "smollm",
 * "falcon", or "spm" for SentencePiece vocabs. A tokenizer.ggml.pre value vkllm does not know falls
 * back to "default" (llama.cpp refuses such a file); tok_pre_unknown() is then true so that the
 * caller can warn that ids may differ from llama.cpp's. */
const char *tok_pre_name(const tok_vocab *v);
bool tok_pre_unknown(const tok_vocab *v);
/* SentencePiece vocabs put a space in front of the text. tok_piece keeps it (pieces are per
 * token); a detokenizer that wants llama.cpp's text drops one leading space from the first
 * piece when this is true and the first token is not BOS. */
bool tok_add_space_prefix(const tok_vocab *v);

#endif
