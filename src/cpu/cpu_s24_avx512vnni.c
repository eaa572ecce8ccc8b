/* The packed 2:4 formats' AVX-512 matmul with VNNI: cpu_s24_avx512.c compiled again with
 * -mavx512vnni, its integer sums by vpdpbusd (see that file for why the bits do not change). */
#define CPU_AVX512_VNNI 1
#include "cpu_s24_avx512.c"
