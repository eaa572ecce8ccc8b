/* CPU name from /proc/cpuinfo (Linux) and feature flags from cpuid. */
#include "cpu/cpu_info.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The value of the first "key : value" line of /proc/cpuinfo, or fallback. */
static void cpuinfo_field(const char *key, const char *fallback, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", fallback);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    const size_t kl = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) != 0 || (line[kl] != ' ' && line[kl] != '\t' &&
                                            line[kl] != ':'))
            continue;
        const char *v = strchr(line, ':');
        if (v) {
            v++;
            while (*v == ' ' || *v == '\t') v++;
            snprintf(buf, cap, "%s", v);
            size_t n = strlen(buf);
            while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = '\0';
        }
        break;
    }
    fclose(f);
}

void cpu_info_name(char *buf, size_t cap) { cpuinfo_field("model name", "CPU", buf, cap); }

void cpu_info_device(vkllm_device_info *d) {
    memset(d, 0, sizeof *d);
    cpu_info_name(d->name, sizeof d->name);
    cpuinfo_field("vendor_id", "", d->vendor, sizeof d->vendor);
    snprintf(d->kind, sizeof d->kind, "cpu");
    snprintf(d->backend, sizeof d->backend, "cpu");
    cpu_info_features(d->features, sizeof d->features);
    d->memory_bytes = cpu_info_memory_bytes();
    d->index = 0;
    d->tier = -1;
}

void cpu_info_features(char *buf, size_t cap) {
    buf[0] = '\0';
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* F16C is not queryable on every compiler; every AVX2 processor has it. */
    snprintf(buf, cap, "%s%s%s%s", __builtin_cpu_supports("avx2") ? "avx2 f16c " : "",
             __builtin_cpu_supports("fma") ? "fma " : "",
             __builtin_cpu_supports("avx512f") ? "avx512f " : "",
             __builtin_cpu_supports("avx512vnni") ? "avx512vnni " : "");
    size_t n = strlen(buf);
    if (n > 0) buf[n - 1] = '\0';
#else
    snprintf(buf, cap, "scalar");
#endif
}

int cpu_info_n_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

uint64_t cpu_info_memory_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}
