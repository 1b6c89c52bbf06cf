// OpenBLAS's kernel choice. A DYNAMIC_ARCH build (Debian's) picks its kernels from the CPU
// model at load time; on a CPU it does not recognise (a virtual machine's "Intel Xeon
// Processor" with AVX-512, say) it falls back to its generic x86-64 kernels, "Prescott",
// which run SGEMM 4-5x slower than the AVX-512 ones (measured here: 41 vs 169 GFLOP/s at
// 768x384x128, 47 vs 243 at 1024^3, one thread). OpenBLAS reads OPENBLAS_CORETYPE only in
// gotoblas_dynamic_init, so the reselection below sets it for that call alone, in a
// constructor: shared libraries (OpenBLAS among them) are initialised before the executable
// that links Ember statically, and no other thread of the program runs yet.
#define _GNU_SOURCE
#include "cpu_kernels.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static const char *reselected_from = NULL;

static const char *openblas_core(void) {
    char *(*corename)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_corename");
    return corename ? corename() : NULL;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((constructor)) static void ember_reselect_openblas_core(void) {
    if (getenv("OPENBLAS_CORETYPE")) return;  // the user's (or the machine's) choice stands
    void (*init)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    void (*quit)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    const char *core = openblas_core();
    if (!init || !quit || !core || strcmp(core, "Prescott") != 0) return;
    __builtin_cpu_init();
    const char *better = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd")) {
        better = "SkylakeX";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        better = "Haswell";
    }
    if (!better) return;
    setenv("OPENBLAS_CORETYPE", better, 1);
    quit();
    init();
    unsetenv("OPENBLAS_CORETYPE");
    reselected_from = "Prescott";
}
#endif

const char *ember_blas_core(void) { return openblas_core(); }

const char *ember_blas_core_reselected_from(void) { return reselected_from; }
