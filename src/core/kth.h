/* The k-th smallest of n values (k < n), by quickselect with Hoare's partition: v is
 * reordered. One definition for the element types the pruners rank (float scores in
 * api_prune.c, double scores in core/sparsegpt.c). NaNs must not occur in v. */
#ifndef VKLLM_CORE_KTH_H
#define VKLLM_CORE_KTH_H

#include <stdint.h>

#define CORE_KTH_SMALLEST(NAME, T)                                                                 \
    static T NAME(T *v, uint64_t n, uint64_t k) {                                                  \
        int64_t lo = 0, hi = (int64_t)n - 1;                                                       \
        const int64_t kk = (int64_t)k;                                                             \
        while (lo < hi) {                                                                          \
            const T p = v[lo + (hi - lo) / 2];                                                     \
            int64_t i = lo, j = hi;                                                                \
            while (i <= j) {                                                                       \
                while (v[i] < p)                                                                   \
                    i++;                                                                           \
                while (v[j] > p)                                                                   \
                    j--;                                                                           \
                if (i <= j) {                                                                      \
                    const T t = v[i];                                                              \
                    v[i++] = v[j];                                                                 \
                    v[j--] = t;                                                                    \
                }                                                                                  \
            }                                                                                      \
            if (kk <= j)                                                                           \
                hi = j;                                                                            \
            else if (kk >= i)                                                                      \
                lo = i;                                                                            \
            else                                                                                   \
                return v[kk];                                                                      \
        }                                                                                          \
        return v[kk];                                                                              \
    }

#endif
