/* What the CPU is: its name and the SIMD features vkllm uses. */
#ifndef VKLLM_CPU_INFO_H
#define VKLLM_CPU_INFO_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm.h"

void cpu_info_name(char *buf, size_t cap);
void cpu_info_features(char *buf, size_t cap);
int cpu_info_n_cores(void);
uint64_t cpu_info_memory_bytes(void);
/* The CPU as a public device description (vendor: the cpuid vendor, e.g. "AuthenticAMD"). */
void cpu_info_device(vkllm_device_info *out);

#endif
