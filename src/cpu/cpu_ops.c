/* Picks the kernel table for the CPU backend. */
#include "cpu/cpu_ops.h"

#include <string.h>

void cpu_ops_init(cpu_ops *k, cpu_isa want) {
    memset(k, 0, sizeof *k);
    k->kt = cpu_kernels_get((cpu_kern_isa)want);
    if (!k->kt) k->kt = cpu_kernels_get(CPU_KERN_BEST);
    k->isa = (cpu_isa)k->kt->isa;
    k->ak = cpu_vec_kernels_get(k->isa >= CPU_ISA_AVX2);
}

const char *cpu_isa_name(cpu_isa isa) { return cpu_kern_isa_name((cpu_kern_isa)isa); }
