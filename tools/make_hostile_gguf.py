#!/usr/bin/env python3
"""Writes the GGUF test corpora: tests/data/gguf_hostile/ (one small malformed file per flaw,
named after it; each must be rejected by `vkllm info` with an "error:" line, see
tests/cli_gguf_hostile.sh) and tests/data/gguf_corpus/ (small valid files that seed
tests/fuzz/fuzz_gguf.c).

Plain Python standard library only: the bytes are laid out by hand with struct, following the
GGUF spec (ggml/docs/gguf.md), so the corpus does not depend on any GGUF library's opinion of
what is valid. Output is deterministic; rerun after changing a case and commit the files.

Usage: tools/make_hostile_gguf.py [REPO_ROOT]
"""
import os
import struct
import sys

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
# ggml tensor types used here
T_F32, T_F16, T_Q4_0, T_Q8_0 = 0, 1, 2, 8
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
              BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return u64(len(b)) + b


def header(n_tensors, n_kv, version=3, magic=b"GGUF"):
    return magic + u32(version) + u64(n_tensors) + u64(n_kv)


def kv(key, vtype, value):
    """One key/value; value is a scalar, a str, or for arrays a (elem_type, [values]) pair."""
    return gstr(key) + u32(vtype) + encode(vtype, value)


def encode(vtype, value):
    if vtype == STR:
        return gstr(value)
    if vtype == ARR:
        et, items = value
        return u32(et) + u64(len(items)) + b"".join(encode(et, x) for x in items)
    return struct.pack(SCALAR_FMT[vtype], value)


def tinfo(name, ne, ttype, offset):
    return gstr(name) + u32(len(ne)) + b"".join(u64(x) for x in ne) + u32(ttype) + u64(offset)


def pad(b, align=32):
    return b + b"\0" * (-len(b) % align)


def model(kvs, tensors, data, align=32):
    """A file from encoded kvs, tensor infos and the data section."""
    return pad(header(len(tensors), len(kvs)) + b"".join(kvs) + b"".join(tensors), align) + data


ARCH = kv("general.architecture", STR, "llama")


def one_tensor(ne, ttype, offset, data_len, name="blk.0.attn_q.weight", extra_kvs=()):
    return model([ARCH, *extra_kvs], [tinfo(name, ne, ttype, offset)], b"\xab" * data_len)


def hostile_cases():
    ok = one_tensor([8, 2], T_F32, 0, 64)  # a valid file the truncations start from
    hdr_len = 24
    kv_end = hdr_len + len(ARCH)
    cases = {
        "empty": b"",
        "truncated_in_header": ok[:13],
        "bad_magic": header(0, 0, magic=b"GGML"),
        "version_1": header(0, 0, version=1),
        "version_4": header(0, 0, version=4),
        "big_endian": b"GGUF" + struct.pack(">I", 3) + struct.pack(">Q", 0) * 2,
        "huge_n_kv": header(0, 2**64 - 1) + ARCH,
        "huge_n_tensors": header(2**60, 1) + ARCH,
        "truncated_in_kv": (header(0, 2) + ARCH + kv("general.name", STR, "x" * 100))[:-40],
        "key_length_overflow": header(0, 1) + u64(2**64 - 1) + b"general.name",
        "empty_key": header(0, 1) + gstr("") + u32(U32) + u32(1),
        "duplicate_key": header(0, 2) + ARCH + ARCH,
        "unknown_value_type": header(0, 1) + gstr("general.name") + u32(13) + u64(0),
        "string_length_overflow": header(0, 1) + gstr("llama.block_count") + u32(STR)
        + u64(2**64 - 1) + b"x" * 8,
        "array_length_overflow": header(0, 1) + gstr("a") + u32(ARR) + u32(U64) + u64(2**61)
        + b"\0" * 16,
        "array_past_end": header(0, 1) + gstr("a") + u32(ARR) + u32(I32) + u64(100) + b"\0" * 16,
        "array_unknown_elem_type": header(0, 1) + gstr("a") + u32(ARR) + u32(77) + u64(0),
        "string_array_count_huge": header(0, 1) + gstr("tokenizer.ggml.tokens") + u32(ARR)
        + u32(STR) + u64(2**62) + gstr("<s>"),
        "string_array_elem_past_end": header(0, 1) + gstr("tokenizer.ggml.tokens") + u32(ARR)
        + u32(STR) + u64(2) + gstr("<s>") + u64(1000) + b"abc",
        "nested_array_bomb": header(0, 1) + gstr("bomb") + u32(ARR) + u32(ARR) + u64(2**63)
        + (u32(U8) + u64(0)) * 4,
        "nested_array_too_deep": header(0, 1) + gstr("deep") + u32(ARR)
        + (u32(ARR) + u64(1)) * 64 + u32(U8) + u64(0),
        "bad_bool": header(0, 1) + gstr("tokenizer.ggml.add_bos_token") + u32(BOOL) + b"\x02",
        "alignment_zero": model([ARCH, kv("general.alignment", U32, 0)], [], b""),
        "alignment_not_pow2": model([ARCH, kv("general.alignment", U32, 3)], [], b""),
        "alignment_wrong_type": model([ARCH, kv("general.alignment", U64, 32)], [], b""),
        "truncated_in_tensor_info": ok[:kv_end + 20],
        "tensor_n_dims_0": one_tensor([], T_F32, 0, 64),
        "tensor_n_dims_5": one_tensor([1, 1, 1, 1, 8], T_F32, 0, 64),
        "tensor_ne_negative": one_tensor([2**63, 1], T_F32, 0, 64),
        "tensor_ne_overflow": one_tensor([2**32, 2**32], T_F32, 0, 64),
        "tensor_size_overflow": one_tensor([2**62], T_F32, 0, 64),
        "tensor_unknown_type": one_tensor([32], 99, 0, 64),
        "tensor_removed_type": one_tensor([32], 4, 0, 64),
        "tensor_ne0_not_block_multiple": one_tensor([33, 1], T_Q4_0, 0, 64),
        "tensor_misaligned_offset": one_tensor([8], T_F32, 16, 64),
        "tensor_offset_overflow": one_tensor([8], T_F32, 2**64 - 32, 64),
        "tensor_past_end": one_tensor([8, 4], T_F32, 0, 64),
        "truncated_in_data": ok[:-1],
        "tensor_overlap": model([ARCH], [tinfo("a", [16], T_F32, 0), tinfo("b", [8], T_F32, 32)],
                                b"\0" * 96),
        "tensor_duplicate_name": model([ARCH], [tinfo("a", [8], T_F32, 0),
                                                tinfo("a", [8], T_F32, 32)], b"\0" * 64),
        "tensor_empty_name": one_tensor([8], T_F32, 0, 32, name=""),
        "tensor_name_too_long": one_tensor([8], T_F32, 0, 32, name="n" * 64),
    }
    return cases


def seed_cases():
    """Small valid files covering every value type, nested arrays and a few tensor types."""
    every = [
        ARCH,
        kv("general.name", STR, "tiny \"seed\"\n\u00e9"),
        kv("general.alignment", U32, 32),
        kv("t.u8", U8, 200), kv("t.i8", I8, -5), kv("t.u16", U16, 60000),
        kv("t.i16", I16, -300), kv("t.u32", U32, 30), kv("t.i32", I32, -1),
        kv("t.f32", F32, 1e-5), kv("t.bool", BOOL, 1), kv("t.u64", U64, 2**63),
        kv("t.i64", I64, -(2**62)), kv("t.f64", F64, 2.5),
        kv("tokenizer.ggml.tokens", ARR, (STR, ["<s>", "</s>", "a", "\u2581b", ""])),
        kv("tokenizer.ggml.scores", ARR, (F32, [0.0, -1.0, -2.5, 3.0, 0.5])),
        kv("tokenizer.ggml.token_type", ARR, (I32, [3, 3, 1, 1, 1])),
        kv("a.u8", ARR, (U8, [1, 2, 3])), kv("a.bool", ARR, (BOOL, [0, 1])),
        kv("a.u64", ARR, (U64, [1, 2**64 - 1])), kv("a.f64", ARR, (F64, [0.1])),
        kv("a.nested", ARR, (ARR, [(U16, [1, 2]), (STR, ["x"]), (ARR, [])])),
        kv("a.empty", ARR, (I8, [])),
    ]
    tensors = [tinfo("token_embd.weight", [32, 2], T_Q8_0, 0),      # 68 bytes
               tinfo("output_norm.weight", [8], T_F32, 96),         # 32
               tinfo("blk.0.attn_q.weight", [32, 1, 1], T_Q4_0, 128),  # 18
               tinfo("blk.0.ffn_up.weight", [4, 2], T_F16, 160),    # 16
               tinfo("empty", [0, 3], T_F32, 0)]
    data = pad(bytes(range(68))) + pad(b"\x3f" * 32) + pad(b"\x11" * 18) + b"\x22" * 16
    seeds = {"every_type": model(every, tensors, data)}
    vocab = [ARCH, kv("tokenizer.ggml.model", STR, "gpt2"),
             kv("tokenizer.ggml.tokens", ARR, (STR, ["<|endoftext|>", "h", "e", "he"])),
             kv("tokenizer.ggml.merges", ARR, (STR, ["h e"])),
             kv("tokenizer.ggml.bos_token_id", U32, 0)]
    seeds["vocab_only"] = model(vocab, [], b"")
    v2 = bytearray(model([ARCH, kv("general.alignment", U32, 64)],
                         [tinfo("w", [16], T_F32, 0)], b"\x01" * 64, align=64))
    v2[4:8] = u32(2)
    seeds["version_2_align_64"] = bytes(v2)
    seeds["minimal"] = header(0, 0)
    return seeds


def write_dir(path, files):
    os.makedirs(path, exist_ok=True)
    for name, data in sorted(files.items()):
        with open(os.path.join(path, name + ".gguf"), "wb") as f:
            f.write(data)
    print(f"{len(files)} files in {path}")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    write_dir(os.path.join(root, "tests", "data", "gguf_hostile"), hostile_cases())
    write_dir(os.path.join(root, "tests", "data", "gguf_corpus"), seed_cases())


if __name__ == "__main__":
    main()
