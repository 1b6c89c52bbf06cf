// Elementwise arithmetic and sums over contiguous float16 and bfloat16 runs in one pass: each
// vector of 8 elements is widened in registers, computed in float32 and rounded back to nearest
// even before the next is read. The generic CPU loops instead widen a block into float32
// scratch, compute there and narrow it back (three passes over the block); both give the same
// bits. AVX2 (with F16C for float16) code where the CPU has it, portable code otherwise; the
// loops are written once, in half_ops_lanes.h, and included once per instruction set.
#include "cpu_kernels.h"
#include "half_bits.h"

typedef float vf4 __attribute__((vector_size(16)));
typedef int32_t vi4 __attribute__((vector_size(16)));

static inline vf4 load_f16_portable(const uint16_t *x) {
    return (vf4){f16_to_f32_scalar(x[0]), f16_to_f32_scalar(x[1]), f16_to_f32_scalar(x[2]), f16_to_f32_scalar(x[3])};
}
static inline void store_f16_portable(vf4 v, uint16_t *y) {
    for (int k = 0; k < 4; k++) y[k] = f32_to_f16_scalar(v[k]);
}
static inline vf4 load_bf16_portable(const uint16_t *x) {
    return (vf4){bits_float((uint32_t)x[0] << 16), bits_float((uint32_t)x[1] << 16), bits_float((uint32_t)x[2] << 16),
                 bits_float((uint32_t)x[3] << 16)};
}
static inline void store_bf16_portable(vf4 v, uint16_t *y) {
    for (int k = 0; k < 4; k++) y[k] = f32_to_bf16_scalar(v[k]);
}

#define NAME(base) base##_portable
#define VF vf4
#define VI vi4
#define LANES 4
#define LOAD_F16 load_f16_portable
#define STORE_F16 store_f16_portable
#define LOAD_BF16 load_bf16_portable
#define STORE_BF16 store_bf16_portable
#include "half_ops_lanes.h"

#if defined(__x86_64__)
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
#pragma clang attribute push(__attribute__((target("avx2,f16c"))), apply_to = function)
static inline __attribute__((always_inline)) vf8 load_f16_avx2(const uint16_t *x) {
    return (vf8)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x));
}
static inline __attribute__((always_inline)) void store_f16_avx2(vf8 v, uint16_t *y) {
    _mm_storeu_si128((__m128i *)y, _mm256_cvtps_ph((__m256)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
static inline __attribute__((always_inline)) vf8 load_bf16_avx2(const uint16_t *x) {
    return (vf8)_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)x)), 16);
}
static inline __attribute__((always_inline)) void store_bf16_avx2(vf8 v, uint16_t *y) {
    __m256i rounded = avx2_bf16_round((__m256i)v);
    _mm_storeu_si128((__m128i *)y, _mm_packus_epi32(_mm256_castsi256_si128(rounded), _mm256_extracti128_si256(rounded, 1)));
}
#define NAME(base) base##_avx2
#define VF vf8
#define VI vi8
#define LANES 8
#define LOAD_F16 load_f16_avx2
#define STORE_F16 store_f16_avx2
#define LOAD_BF16 load_bf16_avx2
#define STORE_BF16 store_bf16_avx2
#include "half_ops_lanes.h"
#pragma clang attribute pop

// Every AVX2 CPU made has F16C, but the two are separate CPUID bits: check both.
static int has_avx2_f16c(ember_isa isa) {
    __builtin_cpu_init();
    return isa >= EMBER_ISA_AVX2 && __builtin_cpu_supports("f16c");
}
#define WIDE(isa) has_avx2_f16c(isa)
#else
#define WIDE(isa) 0
#endif

void ember_half_binary_isa(ember_isa isa, ember_half_binary_op op, ember_half_format format, const uint16_t *a, float sa,
                           const uint16_t *b, float sb, uint16_t *y, long n) {
#if defined(__x86_64__)
    if (WIDE(isa)) return binary_table_avx2[format][op](a, sa, b, sb, y, n);
#endif
    binary_table_portable[format][op](a, sa, b, sb, y, n);
}

void ember_half_unary_isa(ember_isa isa, ember_half_unary_op op, ember_half_format format, const uint16_t *x, uint16_t *y, long n) {
#if defined(__x86_64__)
    if (WIDE(isa)) return unary_table_avx2[format][op](x, y, n);
#endif
    unary_table_portable[format][op](x, y, n);
}

float ember_half_sum_isa(ember_isa isa, ember_half_format format, const uint16_t *x, long n) {
#if defined(__x86_64__)
    if (WIDE(isa)) return format == EMBER_BFLOAT16 ? sum_bf16_avx2(x, n) : sum_f16_avx2(x, n);
#endif
    return format == EMBER_BFLOAT16 ? sum_bf16_portable(x, n) : sum_f16_portable(x, n);
}

void ember_half_binary(ember_half_binary_op op, ember_half_format format, const uint16_t *a, float sa, const uint16_t *b,
                       float sb, uint16_t *y, long n) {
    ember_half_binary_isa(ember_cpu_isa(), op, format, a, sa, b, sb, y, n);
}

void ember_half_unary(ember_half_unary_op op, ember_half_format format, const uint16_t *x, uint16_t *y, long n) {
    ember_half_unary_isa(ember_cpu_isa(), op, format, x, y, n);
}

float ember_half_sum(ember_half_format format, const uint16_t *x, long n) { return ember_half_sum_isa(ember_cpu_isa(), format, x, n); }
