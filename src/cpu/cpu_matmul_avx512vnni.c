/* The AVX-512 matmul with VNNI: cpu_matmul_avx512.c compiled again with -mavx512vnni, its
 * integer products by vpdpbusd (see that file for why the floats are still AVX2's). */
#define CPU_AVX512_VNNI 1
#include "cpu_matmul_avx512.c"
