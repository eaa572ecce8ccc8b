#!/usr/bin/env bash
# Makes the texts perplexity is measured on: books of the King James Bible (public domain),
# from Debian's bible-kjv package (scripts/deps.sh installs it), as plain text without verse
# numbers, one verse per line, into $VKLLM_CACHE/texts/kjv-<book>.txt. Each file is checked
# against a pinned sha256 (bible-kjv 4.38); a mismatch is an error. Idempotent.
# Usage: scripts/fetch_texts.sh   (prints the folder on stdout)
# Env:   VKLLM_CACHE (default ~/.cache/vkllm)
set -euo pipefail
me=fetch_texts
. "$(dirname "$0")/lib.sh"

cache="${VKLLM_CACHE:-$HOME/.cache/vkllm}"
dir="$cache/texts"
# book, its verse range for the bible program, sha256 of the text
books="\
genesis  Genesis 1:1-50:26  e7b72bfd25d395f55a3bd0c1ada5cbf3fd627f61734d239503d834ac9b5e23b6
exodus   Exodus 1:1-40:38   b206058a0753d5537c036436ca58ab98999a9568e6242ce0cb5796b610ab510d"

mkdir -p "$dir"
while read -r name book range sum; do
    out="$dir/kjv-$name.txt"
    if [ -f "$out" ] && echo "$sum  $out" | sha256sum -c --quiet - 2>/dev/null; then
        continue
    fi
    command -v bible >/dev/null || die "the bible program is missing (scripts/deps.sh installs bible-kjv)"
    tmp=$(mktemp "$dir/.kjv-$name.XXXXXX")
    # "Ge1:1 In the beginning ..." -> "In the beginning ..."
    if ! bible -f "$book $range" 2>/dev/null | sed 's/^[0-9A-Za-z]*[0-9]*:[0-9]* //' >"$tmp"; then
        rm -f "$tmp"
        die "bible -f '$book $range' failed"
    fi
    if ! echo "$sum  $tmp" | sha256sum -c --quiet - >/dev/null 2>&1; then
        rm -f "$tmp"
        die "kjv-$name.txt: sha256 differs from the pinned one (another bible-kjv version?)"
    fi
    chmod 644 "$tmp"
    mv "$tmp" "$out"
    say "made $out"
done <<<"$books"
echo "$dir"
