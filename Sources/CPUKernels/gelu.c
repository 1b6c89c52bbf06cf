// The exact GELU and its gradient over dense float32 runs, in AVX-512 and AVX2+FMA code picked
// at run time (see softmax.c for why such code lives in C), else portable 4-lane code. The
// algorithm is written once, in gelu_lanes.h on GNU vectors, and included once per
// instruction set. Its erf and exp are `VectorMath`'s (Swift, the same coefficients), which
// the strided and 16-bit loops use.
#include "cpu_kernels.h"
#include <stdint.h>
#include <string.h>

typedef float vf4 __attribute__((vector_size(16)));
typedef int32_t vi4 __attribute__((vector_size(16)));
#define NAME(base) base##_portable
#define VF vf4
#define VI vi4
#define LANES 4
#include "gelu_lanes.h"

#if defined(__x86_64__)
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define NAME(base) base##_avx2
#define VF vf8
#define VI vi8
#define LANES 8
#include "gelu_lanes.h"
#pragma clang attribute pop

typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#define NAME(base) base##_avx512
#define VF vf16
#define VI vi16
#define LANES 16
#include "gelu_lanes.h"
#pragma clang attribute pop
#endif

void ember_gelu_isa(ember_isa isa, const float *x, float *y, long n) {
    switch (isa) {
#if defined(__x86_64__)
    case EMBER_ISA_AVX512: case EMBER_ISA_AVX512_BF16: case EMBER_ISA_AMX_BF16: gelu_avx512(x, y, n); break;
    case EMBER_ISA_AVX2: gelu_avx2(x, y, n); break;
#endif
    default: gelu_portable(x, y, n); break;
    }
}

void ember_gelu_gradient_isa(ember_isa isa, const float *g, const float *x, float *y, long n) {
    switch (isa) {
#if defined(__x86_64__)
    case EMBER_ISA_AVX512: case EMBER_ISA_AVX512_BF16: case EMBER_ISA_AMX_BF16: gelu_gradient_avx512(g, x, y, n); break;
    case EMBER_ISA_AVX2: gelu_gradient_avx2(g, x, y, n); break;
#endif
    default: gelu_gradient_portable(g, x, y, n); break;
    }
}

void ember_gelu(const float *x, float *y, long n) { ember_gelu_isa(ember_cpu_isa(), x, y, n); }

void ember_gelu_gradient(const float *g, const float *x, float *y, long n) { ember_gelu_gradient_isa(ember_cpu_isa(), g, x, y, n); }
