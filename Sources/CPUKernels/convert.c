// Conversions between float32 and the two 16-bit float formats, bfloat16 (the top half of a
// float32) and IEEE binary16. Every path rounds to nearest even, keeps subnormals, and turns a
// NaN into a quiet NaN of the same sign with the payload's top bits (what x86's F16C
// instructions do), so the vector and scalar versions agree bit for bit. The vector versions
// handle whole vectors and leave the tail of each array to the scalar code.
#include "cpu_kernels.h"
#include <stdint.h>
#include <string.h>

static inline uint32_t float_bits(float x) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    return bits;
}

static inline float bits_float(uint32_t bits) {
    float x;
    memcpy(&x, &bits, 4);
    return x;
}

static inline uint16_t f32_to_bf16_scalar(float x) {
    uint32_t bits = float_bits(x);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x0040u);
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

static inline uint16_t f32_to_f16_scalar(float x) {
    uint32_t bits = float_bits(x);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t magnitude = bits & 0x7FFFFFFFu;
    if (magnitude > 0x7F800000u) return sign | 0x7E00u | (uint16_t)((magnitude >> 13) & 0x3FFu);
    // 65520 (0x477FF000) lies halfway between 65504, the largest half, whose last mantissa
    // bit is odd, and 65536: it and everything above round to infinity.
    if (magnitude >= 0x477FF000u) return sign | 0x7C00u;
    if (magnitude >= 0x38800000u) {  // 2^-14 and up: a normal half
        uint32_t rounded = magnitude + 0x0FFFu + ((magnitude >> 13) & 1u);
        return sign | (uint16_t)((rounded - 0x38000000u) >> 13);  // exponent bias 127 -> 15
    }
    // A subnormal half counts units of 2^-24: the float's significand (implicit bit included)
    // shifted right by 126 - exponent, rounded to nearest even. Rounding up from the largest
    // subnormal gives 0x400, the smallest normal, as it should.
    int exponent = (int)(magnitude >> 23);
    int shift = 126 - exponent;
    if (shift > 24) return sign;  // below 2^-25: rounds to zero
    uint32_t significand = (magnitude & 0x7FFFFFu) | 0x800000u;
    uint32_t quotient = significand >> shift, rest = significand & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (quotient & 1u))) quotient++;
    return sign | (uint16_t)quotient;
}

static inline float f16_to_f32_scalar(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
    if (exponent == 0x1F) return bits_float(sign | 0x7F800000u | (mantissa << 13) | (mantissa ? 0x400000u : 0));
    if (exponent != 0) return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
    if (mantissa == 0) return bits_float(sign);
    // Subnormal: mantissa * 2^-24, exact in float32.
    float magnitude = (float)mantissa * 0x1p-24f;
    return bits_float(sign | float_bits(magnitude));
}

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

__attribute__((target("avx2"))) static inline __m256i avx2_bf16_round(__m256i bits) {
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF))), 16);
    __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF)), _mm256_set1_epi32(0x7F800000));
    return _mm256_blendv_epi8(rounded, quiet, nan);
}

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
