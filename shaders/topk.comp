// Top-k of each row of F32 logits (k <= KMAX): the k largest, largest first, ties to the lower
// index, NaN below every number (sample.glsl's key order). Out: ids and the values' bits.
//
// Every element is ranked by the composite (key, tie = width - 1 - id): unique per element, and
// larger for the element that must come first. One workgroup keeps the top k of a list in a
// candidate buffer in shared memory, with a bound W that every member of the current top k is
// at or above (0 at first). It reads the list once, SUB = PER * NB elements at a time, each
// invocation holding its PER in registers, and appends the elements at or above W. When the
// buffer is full it shrinks it to its top k, which raises W, and the elements not yet placed
// are tried again against the new W. So a step costs one barrier unless the buffer fills, and
// once W has risen few elements get in. The first W comes from the best element of each
// invocation in the first step (see there). At the end the buffer is shrunk to its top k.
// The shrink is a radix select (as in Alabi et al. 2012, "Fast k-selection algorithms for
// graphics processing units"): one 8-bit digit of the composite per round, from the top, a
// histogram of the entries that match the prefix so far and the bin where the count reaches
// the k still wanted; a bin taken whole ends it early. It gives the new W: exactly the wanted
// entries are >= W.
//
// The host (src/vk/vk_ops_sample.c) runs it in one of three modes (specialization constant
// MODE, a pipeline each):
//   0: logits -> result, one workgroup per row (short rows, or many rows);
//   1: logits -> scratch: workgroup (c, row) keeps the top k of chunk c of the row as k
//      (key, id) pairs at scratch[(row * n_chunks + c) * k], in no order, padded with
//      (KEY_NONE, ID_NONE) when the chunk has fewer than k elements;
//   2: scratch -> result: one workgroup per row over its n_chunks * k candidates.
// The result is sorted by rank (each entry counts the entries before it). The workgroup size
// must be NB. A row whose flag in the step parameters says so leaves the banned ids out
// (sample.glsl is_banned): modes 0 and 1 read them as padding, so they are never placed.
#version 450
#extension GL_GOOGLE_include_directive : require
#define PARAMS_BINDING 4
#include "common.glsl"
#include "sample.glsl"

#define NB 256u
#define KMAX 128u
#define GROUP 16u // histogram bins in GROUP groups of GROUP, for the search

// Elements per invocation per step, and the candidate buffer: (PER + 1) * KMAX entries of 8
// bytes. The host picks 16 where the device has 24 KiB of shared memory, else 8 (16 KiB is
// Vulkan's minimum).
layout(constant_id = 0) const uint PER = 16;
const uint CAP = (PER + 1u) * KMAX;   // > KMAX: a shrink always makes room
const uint CAP_PER = (CAP + NB - 1u) / NB; // buffer entries per invocation
// The mode (above): a constant, so that a CPU device, which runs both sides of a branch it
// cannot prove uniform, compiles only the one it takes.
layout(constant_id = 1) const uint MODE = 0;

layout(std430, binding = 0) readonly buffer L { uint logits[]; }; // F32 bits
layout(std430, binding = 1) buffer S { uvec2 scratch[]; };         // (key, id)
layout(std430, binding = 2) writeonly buffer I { uint ids[]; };
layout(std430, binding = 3) writeonly buffer V { uint vals[]; };   // F32 bits
layout(push_constant) uniform PC {
    uint n_rows, width, stride, k;
    uint n_chunks, chunk; // modes 1 and 2
    uint ban; // 0: no parameter buffer is bound (binding 4 is a stand-in): nothing banned
} pc;

shared uint l_key[CAP], l_tie[CAP]; // the candidate buffer
shared uint hist[2][NB];             // two: a round clears the next one's
shared uint part[2][GROUP];
shared uint s_want_hi, s_want_lo, s_mask_hi, s_mask_lo, s_kk, s_done;
// Appends to the buffer count in s_add[phase % 3]: each phase clears the next phase's counter
// before its closing barrier and reads its own after it, so no phase's count is cleared while
// some invocation may still read it, without a second barrier.
shared uint s_add[3];

uint g_row, g_first, g_n, g_last, g_tie_digits;
uvec2 g_ban; // the row's banned span (ban_span)
uint g_h;     // the histogram in use
uint g_phase; // of the append counters

// Element i of this workgroup's input: its key (KEY_NONE for padding) and id.
void elem(uint i, out uint key, out uint id) {
    if (MODE == 2u) {
        const uvec2 e = scratch[g_first + i];
        key = e.x;
        id = e.y;
    } else {
        id = g_first + i;
        key = is_banned(id, g_ban) ? KEY_NONE : logit_key(logits[g_row * pc.stride + id]);
    }
}

bool at_least(uint key, uint tie, uvec2 w) { return key > w.x || (key == w.x && tie >= w.y); }

// Radix select on l_key/l_tie[0..n): returns W such that exactly min(want, entries) entries
// are >= W (W = 0 when all are). Starts and ends with a barrier; hist[g_h] must be zero.
uvec2 radix_select(uint n, uint want) {
    const uint tid = gl_LocalInvocationID.x;
    if (tid == 0u) {
        s_want_hi = s_want_lo = s_mask_hi = s_mask_lo = 0u;
        s_kk = want;
        s_done = 0u;
    }
    barrier();
    for (uint r = 0u; r < 4u + g_tie_digits; r++) {
        const bool on_tie = r >= 4u;
        const uint shift = on_tie ? (g_tie_digits - 1u - (r - 4u)) * 8u : 24u - 8u * r;
        const uint wh = s_want_hi, wl = s_want_lo, mh = s_mask_hi, ml = s_mask_lo;
        for (uint i = tid; i < n; i += NB) {
            const uint key = l_key[i], tie = l_tie[i];
            if (key == KEY_NONE || (key & mh) != wh || (tie & ml) != wl) continue;
            const uint d = ((on_tie ? tie : key) >> shift) & 0xffu;
            atomicAdd(hist[g_h][d], 1u);
            atomicAdd(part[g_h][d / GROUP], 1u);
        }
        hist[g_h ^ 1u][tid] = 0u; // unused this round: ready for the next
        if (tid < GROUP) part[g_h ^ 1u][tid] = 0u;
        barrier();
        if (tid == 0u) {
            const uint kk = s_kk;
            uint p[GROUP], total = 0u;
            for (uint j = 0u; j < GROUP; j++) {
                p[j] = part[g_h][j];
                total += p[j];
            }
            if (total <= kk) {
                s_done = 1u; // no more match than are wanted: all of them
            } else { // the bin, from the top, where the count reaches kk
                uint above = 0u, g = GROUP - 1u;
                while (g > 0u && above + p[g] < kk) above += p[g--];
                uint h[GROUP];
                for (uint j = 0u; j < GROUP; j++) h[j] = hist[g_h][g * GROUP + j];
                uint b = GROUP - 1u;
                while (b > 0u && above + h[b] < kk) above += h[b--];
                const uint bin = g * GROUP + b;
                if (on_tie) {
                    s_want_lo |= bin << shift;
                    s_mask_lo |= 0xffu << shift;
                } else {
                    s_want_hi |= bin << shift;
                    s_mask_hi |= 0xffu << shift;
                }
                s_kk = kk - above;
                if (kk == above + h[b]) s_done = 1u;
            }
        }
        barrier();
        g_h ^= 1u;
        if (s_done != 0u) break;
    }
    // the digits not yet chosen are 0 in W, so an entry is >= W exactly when its chosen digits
    // are >= the prefix
    return uvec2(s_want_hi, s_want_lo);
}

// Shrinks the buffer's n entries to its top min(k, n); returns the new bound. Starts and ends
// with a barrier.
uvec2 shrink(uint n) {
    const uint tid = gl_LocalInvocationID.x;
    const uvec2 w = radix_select(n, pc.k);
    uint rk[CAP_PER], rt[CAP_PER];
    for (uint j = 0u; j < CAP_PER; j++) {
        const uint i = j * NB + tid;
        rk[j] = i < n ? l_key[i] : KEY_NONE;
        rt[j] = i < n ? l_tie[i] : 0u;
    }
    barrier();
    const uint c = g_phase % 3u;
    if (tid == 0u) s_add[(g_phase + 1u) % 3u] = 0u;
    for (uint j = 0u; j < CAP_PER; j++)
        if (rk[j] != KEY_NONE && at_least(rk[j], rt[j], w)) {
            const uint slot = atomicAdd(s_add[c], 1u);
            l_key[slot] = rk[j];
            l_tie[slot] = rt[j];
        }
    barrier();
    g_phase++;
    return w;
}

void main() {
    const uint tid = gl_LocalInvocationID.x;
    g_row = gl_WorkGroupID.y;
    g_ban = MODE == 2u ? uvec2(1u, 0u) : ban_span(g_row, pc.ban != 0u);
    if (MODE == 2u) {
        g_first = g_row * pc.n_chunks * pc.k;
        g_n = pc.n_chunks * pc.k;
    } else {
        const uint c0 = min(gl_WorkGroupID.x * pc.chunk, pc.width);
        g_first = c0;
        g_n = min(pc.chunk, pc.width - c0);
    }
    g_last = pc.width - 1u;
    g_tie_digits = uint((findMSB(g_last) + 8) / 8); // findMSB(0) = -1: none
    g_h = 0u;
    hist[0][tid] = 0u;
    if (tid < GROUP) part[0][tid] = 0u;
    if (tid < 3u) s_add[tid] = 0u;
    g_phase = 0u;
    barrier();

    uvec2 w = uvec2(0u); // the current top k is >= w
    uint n = 0u;         // entries in the buffer (the same in every invocation)
    for (uint sub = 0u; sub < g_n; sub += PER * NB) {
        uint ek[PER], et[PER];
        for (uint j = 0u; j < PER; j++) {
            const uint i = sub + j * NB + tid;
            uint id = 0u;
            ek[j] = KEY_NONE;
            if (i < g_n) elem(i, ek[j], id);
            et[j] = g_last - id;
        }
        if (sub == 0u) {
            // a first bound: each invocation's best, and the k-th best of those (fewer: 0).
            // Only invocations at or above it can hold elements that are, so at most
            // k * PER <= CAP - KMAX get in and the first step does not fill the buffer (which
            // is empty: its first NB entries lend the room)
            uint bk = KEY_NONE, bt = 0u;
            for (uint j = 0u; j < PER; j++)
                if (ek[j] != KEY_NONE && (ek[j] > bk || (ek[j] == bk && et[j] > bt))) {
                    bk = ek[j];
                    bt = et[j];
                }
            l_key[tid] = bk;
            l_tie[tid] = bt;
            w = radix_select(NB, pc.k);
        }
        for (;;) { // place them (KEY_NONE marks one placed or dropped)
            const uint c = g_phase % 3u;
            if (tid == 0u) s_add[(g_phase + 1u) % 3u] = 0u;
            // the elements to place, as a bit mask: a loop over its bits costs nothing when
            // no lane has any (on a CPU device an `if` costs the same taken or not)
            uint take = 0u;
            for (uint j = 0u; j < PER; j++) {
                if (ek[j] != KEY_NONE && at_least(ek[j], et[j], w)) take |= 1u << j;
                else ek[j] = KEY_NONE;
            }
            while (take != 0u) {
                const uint j = uint(findLSB(take));
                take &= take - 1u;
                const uint slot = n + atomicAdd(s_add[c], 1u);
                if (slot >= CAP) continue; // full: tried again after the shrink
                l_key[slot] = ek[j];
                l_tie[slot] = et[j];
                ek[j] = KEY_NONE;
            }
            barrier();
            const uint added = s_add[c];
            g_phase++;
            if (n + added <= CAP) {
                n += added;
                break;
            }
            w = shrink(CAP);
            n = min(pc.k, CAP);
        }
    }
    if (n > pc.k) {
        w = shrink(n);
        n = pc.k;
    }
    // now the buffer holds the top min(k, elements), in no order

    if (MODE == 1u) {
        for (uint j = tid; j < pc.k; j += NB)
            scratch[(g_row * pc.n_chunks + gl_WorkGroupID.x) * pc.k + j] =
                j < n ? uvec2(l_key[j], g_last - l_tie[j]) : uvec2(KEY_NONE, ID_NONE);
        return;
    }
    // rank sort: an entry's place is the number of entries before it (composites are unique)
    const uint out0 = g_row * pc.k;
    for (uint j = tid; j < pc.k; j += NB) {
        if (j < n) {
            const uint key = l_key[j], tie = l_tie[j];
            uint rank = 0u;
            for (uint i = 0u; i < n; i++)
                rank += uint(l_key[i] > key || (l_key[i] == key && l_tie[i] > tie));
            const uint id = g_last - tie;
            ids[out0 + rank] = id;
            vals[out0 + rank] = logits[g_row * pc.stride + id];
        } else {
            ids[out0 + j] = ID_NONE;
            vals[out0 + j] = BITS_NEG_INF;
        }
    }
}
