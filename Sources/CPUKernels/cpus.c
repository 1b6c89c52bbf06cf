// The cores this process may run on.
#define _GNU_SOURCE
#include <sched.h>
#include "cpu_kernels.h"

int ember_usable_cpus(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    return 0;
}
