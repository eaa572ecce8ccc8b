/* Picks the kernel tables for the CPU backend. */
#include "cpu/cpu_ops.h"

void cpu_ops_init(cpu_ops *k, cpu_kern_isa want) {
    k->kt = cpu_kernels_get(want);
    if (!k->kt) k->kt = cpu_kernels_get(CPU_KERN_BEST);
    k->ak = cpu_vec_kernels_get(k->kt->isa >= CPU_KERN_AVX2);
    if (k->kt->isa >= CPU_KERN_AVX512 && cpu_vec_kernels_avx512()) k->ak = cpu_vec_kernels_avx512();
}
