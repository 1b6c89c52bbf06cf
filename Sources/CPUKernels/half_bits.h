// The bit-level conversions between float32 and the two 16-bit float formats that convert.c
// and half_ops.c share: scalar ones for every machine and the AVX2 bfloat16 rounding (see
// convert.c for the rounding and NaN rules).
#ifndef EMBER_HALF_BITS_H
#define EMBER_HALF_BITS_H

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

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2"))) static inline __m256i avx2_bf16_round(__m256i bits) {
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF))), 16);
    __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF)), _mm256_set1_epi32(0x7F800000));
    return _mm256_blendv_epi8(rounded, quiet, nan);
}
#endif

#endif
