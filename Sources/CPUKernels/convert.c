// Conversions between float32 and the two 16-bit float formats, bfloat16 (the top half of a
// float32) and IEEE binary16. Every path rounds to nearest even, keeps subnormals, and turns a
// NaN into a quiet NaN of the same sign with the payload's top bits (what x86's F16C
// instructions do), so the vector and scalar versions agree bit for bit. The vector versions
// handle whole vectors and leave the tail of each array to the scalar code.
#include "cpu_kernels.h"
#include "half_bits.h"

static void f32_to_bf16_scalar_loop(const float *x, uint16_t *y, long n) {
    for (long i = 0; i < n; i++) y[i] = f32_to_bf16_scalar(x[i]);
}
static void bf16_to_f32_scalar_loop(const uint16_t *x, float *y, long n) {
    for (long i = 0; i < n; i++) y[i] = bits_float((uint32_t)x[i] << 16);
}
static void f32_to_f16_scalar_loop(const float *x, uint16_t *y, long n) {
    for (long i = 0; i < n; i++) y[i] = f32_to_f16_scalar(x[i]);
}
static void f16_to_f32_scalar_loop(const uint16_t *x, float *y, long n) {
    for (long i = 0; i < n; i++) y[i] = f16_to_f32_scalar(x[i]);
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2"))) static void f32_to_bf16_avx2(const float *x, uint16_t *y, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i low = avx2_bf16_round(_mm256_loadu_si256((const __m256i *)(x + i)));
        __m256i high = avx2_bf16_round(_mm256_loadu_si256((const __m256i *)(x + i + 8)));
        // packus works within 128-bit lanes; the permute puts the four quarters back in order.
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(low, high), 0xD8);
        _mm256_storeu_si256((__m256i *)(y + i), packed);
    }
    f32_to_bf16_scalar_loop(x + i, y + i, n - i);
}

__attribute__((target("avx2"))) static void bf16_to_f32_avx2(const uint16_t *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_slli_epi32(wide, 16));
    }
    bf16_to_f32_scalar_loop(x + i, y + i, n - i);
}

__attribute__((target("avx2,f16c"))) static void f32_to_f16_f16c(const float *x, uint16_t *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(y + i), h);
    }
    f32_to_f16_scalar_loop(x + i, y + i, n - i);
}

__attribute__((target("avx2,f16c"))) static void f16_to_f32_f16c(const uint16_t *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    f16_to_f32_scalar_loop(x + i, y + i, n - i);
}

__attribute__((target("avx512f"))) static void f32_to_bf16_avx512(const float *x, uint16_t *y, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i bits = _mm512_loadu_si512((const void *)(x + i));
        __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
        __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
        rounded = _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtepi32_epi16(rounded));
    }
    f32_to_bf16_scalar_loop(x + i, y + i, n - i);
}

__attribute__((target("avx512f"))) static void bf16_to_f32_avx512(const uint16_t *x, float *y, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(x + i)));
        _mm512_storeu_si512((void *)(y + i), _mm512_slli_epi32(wide, 16));
    }
    bf16_to_f32_scalar_loop(x + i, y + i, n - i);
}

__attribute__((target("avx512f"))) static void f32_to_f16_avx512(const float *x, uint16_t *y, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_storeu_si256((__m256i *)(y + i), h);
    }
    f32_to_f16_scalar_loop(x + i, y + i, n - i);
}

__attribute__((target("avx512f"))) static void f16_to_f32_avx512(const uint16_t *x, float *y, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
    f16_to_f32_scalar_loop(x + i, y + i, n - i);
}

static int has_f16c(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c");
}

void ember_f32_to_bf16_isa(ember_isa isa, const float *x, uint16_t *y, long n) {
    if (isa >= EMBER_ISA_AVX512) f32_to_bf16_avx512(x, y, n);
    else if (isa == EMBER_ISA_AVX2) f32_to_bf16_avx2(x, y, n);
    else f32_to_bf16_scalar_loop(x, y, n);
}

void ember_bf16_to_f32_isa(ember_isa isa, const uint16_t *x, float *y, long n) {
    if (isa >= EMBER_ISA_AVX512) bf16_to_f32_avx512(x, y, n);
    else if (isa == EMBER_ISA_AVX2) bf16_to_f32_avx2(x, y, n);
    else bf16_to_f32_scalar_loop(x, y, n);
}

void ember_f32_to_f16_isa(ember_isa isa, const float *x, uint16_t *y, long n) {
    if (isa >= EMBER_ISA_AVX512) f32_to_f16_avx512(x, y, n);
    else if (isa == EMBER_ISA_AVX2 && has_f16c()) f32_to_f16_f16c(x, y, n);
    else f32_to_f16_scalar_loop(x, y, n);
}

void ember_f16_to_f32_isa(ember_isa isa, const uint16_t *x, float *y, long n) {
    if (isa >= EMBER_ISA_AVX512) f16_to_f32_avx512(x, y, n);
    else if (isa == EMBER_ISA_AVX2 && has_f16c()) f16_to_f32_f16c(x, y, n);
    else f16_to_f32_scalar_loop(x, y, n);
}

#else

void ember_f32_to_bf16_isa(ember_isa isa, const float *x, uint16_t *y, long n) {
    (void)isa;
    f32_to_bf16_scalar_loop(x, y, n);
}
void ember_bf16_to_f32_isa(ember_isa isa, const uint16_t *x, float *y, long n) {
    (void)isa;
    bf16_to_f32_scalar_loop(x, y, n);
}
void ember_f32_to_f16_isa(ember_isa isa, const float *x, uint16_t *y, long n) {
    (void)isa;
    f32_to_f16_scalar_loop(x, y, n);
}
void ember_f16_to_f32_isa(ember_isa isa, const uint16_t *x, float *y, long n) {
    (void)isa;
    f16_to_f32_scalar_loop(x, y, n);
}

#endif

void ember_f32_to_bf16(const float *x, uint16_t *y, long n) { ember_f32_to_bf16_isa(ember_cpu_isa(), x, y, n); }
void ember_bf16_to_f32(const uint16_t *x, float *y, long n) { ember_bf16_to_f32_isa(ember_cpu_isa(), x, y, n); }
void ember_f32_to_f16(const float *x, uint16_t *y, long n) { ember_f32_to_f16_isa(ember_cpu_isa(), x, y, n); }
void ember_f16_to_f32(const uint16_t *x, float *y, long n) { ember_f16_to_f32_isa(ember_cpu_isa(), x, y, n); }
