// Shared by the sampling kernels (argmax.comp, topk.comp; src/vk/vk_ops_sample.c): a logit's
// bits as an unsigned key whose integer order is the order the sampler wants, so the kernels
// compare integers only (no float compare: denormals order exactly whatever the device's
// flush mode, and values go out with the bits they came in with).
//   larger float -> larger key;  +0 and -0 -> one key (equal, so the lower index wins);
//   every NaN -> 1, below -inf (0x007fffff): a NaN never wins over a number;
//   0 -> no element (the padding of a short list), below everything.
#ifndef SAMPLE_GLSL
#define SAMPLE_GLSL

#define KEY_NONE 0u
#define ID_NONE 0xffffffffu
#define BITS_NEG_INF 0xff800000u

uint logit_key(uint bits) {
    const uint a = bits & 0x7fffffffu;
    if (a > 0x7f800000u) return 1u;
    if (a == 0u) return 0x80000000u;
    return (bits & 0x80000000u) != 0u ? ~bits : (bits | 0x80000000u);
}

// (key a, id ia) comes before (key b, id ib): larger key, then lower id.
bool key_before(uint a, uint ia, uint b, uint ib) { return a > b || (a == b && ia < ib); }

#ifdef PARAMS_BINDING
// Banned ids (vk_step_params, eng_seq.ban): an output row's ids that never become candidates,
// as if their logits were absent. ban_span: the first and last banned id of output row `row`
// (on: a parameter buffer is bound), or (1, 0), an empty span, when it bans none. Most ids fall
// outside the span (a model's end-of-generation ids are few and usually neighbours), so only
// the ids inside it search the list.
uvec2 ban_span(uint row, bool on) {
    if (!on || prm.n_ban == 0u || !p_out_ban(row)) return uvec2(1u, 0u);
    return uvec2(p_ban_id(0u), p_ban_id(prm.n_ban - 1u));
}

bool is_banned(uint id, uvec2 span) {
    if (id < span.x || id > span.y) return false;
    uint lo = 0u, hi = prm.n_ban; // binary search: the list is ascending
    while (lo < hi) {
        const uint mid = (lo + hi) / 2u, v = p_ban_id(mid);
        if (v == id) return true;
        if (v < id)
            lo = mid + 1u;
        else
            hi = mid;
    }
    return false;
}
#endif

#endif
