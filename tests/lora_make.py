#!/usr/bin/env python3
"""Writes a random LoRA adapter for a llama-family GGUF model in llama.cpp's adapter format,
with llama.cpp's own gguf-py writer (from the llama-cpp-python sdist) and nothing of vkllm's:
the adapter the interop tests load in both runtimes.

The format, as llama.cpp's loader (src/llama-adapter.cpp) reads it: general.type "adapter",
general.architecture the model's, adapter.type "lora", adapter.lora.alpha; for each adapted
matrix W (GGUF shape [n_in, n_out]) "<name>.lora_a" of shape [n_in, rank] and "<name>.lora_b"
of shape [rank, n_out]; for the token embedding [rank, n_vocab] and [rank, n_embd].

usage: lora_make.py MODEL OUT [--rank R] [--alpha A] [--targets q,k,v,o,gate,up,down]
                    [--type f32|f16] [--seed S] [--embd] [--amp X] [--name NAME]
Needs numpy and PYTHONPATH naming the sdist's gguf-py folder.
"""
import argparse
import os
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("lora_make.py: needs llama.cpp's gguf-py on PYTHONPATH "
             "(vendor/llama.cpp/gguf-py of the llama-cpp-python sdist)")

SUFFIX = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
          "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--targets", default="q,k,v,o,gate,up,down")
    ap.add_argument("--type", choices=["f32", "f16"], default="f32")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--embd", action="store_true", help="adapt the token embedding too")
    ap.add_argument("--amp", type=float, default=1.0, help="scale of the random B")
    ap.add_argument("--name", default=None)
    a = ap.parse_args()

    r = gguf.GGUFReader(a.model)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    shapes = {t.name: [int(x) for x in t.shape] for t in r.tensors}
    rng = np.random.default_rng(a.seed)
    dt = np.float32 if a.type == "f32" else np.float16
    w = gguf.GGUFWriter(a.out + ".tmp", arch)
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", a.alpha)
    if a.name:
        w.add_string("general.name", a.name)
    targets = [SUFFIX[t] for t in a.targets.split(",") if t]
    n = 0
    for name, sh in shapes.items():
        parts = name.split(".")
        if len(parts) != 4 or parts[0] != "blk" or parts[2] not in targets:
            continue
        n_in, n_out = sh[0], sh[1]
        # A like PEFT's init (uniform, 1/sqrt(n_in)); B random too, so the adapter changes
        # the output (a trained B would be; PEFT's zero init would not)
        A = rng.uniform(-1, 1, size=(a.rank, n_in)) / np.sqrt(n_in)
        B = rng.normal(0, 1, size=(n_out, a.rank)) * (a.amp / np.sqrt(a.rank)) * 0.05
        w.add_tensor(name + ".lora_a", A.astype(dt))
        w.add_tensor(name + ".lora_b", B.astype(dt))
        n += 1
    if a.embd:
        n_embd, n_vocab = shapes["token_embd.weight"][:2]
        A = rng.normal(0, 1, size=(n_vocab, a.rank))
        B = rng.normal(0, 1, size=(n_embd, a.rank)) * 0.002 * a.amp
        w.add_tensor("token_embd.weight.lora_a", A.astype(dt))
        w.add_tensor("token_embd.weight.lora_b", B.astype(dt))
        n += 1
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(a.out + ".tmp", a.out)
    print(f"lora_make.py: wrote {a.out}: {n} adapted tensors, rank {a.rank}, {a.type}")


if __name__ == "__main__":
    main()
