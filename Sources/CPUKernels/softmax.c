// Row-wise softmax for the CPU backend. Swift code in the package is compiled for the
// baseline x86-64 instruction set (SSE2), because SwiftPM packages may not pass compiler
// flags; C functions can carry their own `target` attribute, so the wide-vector versions
// live here and are picked at run time from what the CPU reports.
#include "cpu_kernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

// e^x = 2^n * e^r with n = round(x / ln 2) and |r| <= ln2 / 2, e^r from a degree-6
// polynomial (relative error about 2e-7). Inputs are clamped to [-87.3, 88.7]; below
// -87.3 the result is 0, and NaN is passed through.
#define EXP_LOW (-87.3f)
#define EXP_HIGH 88.7f
#define EXP_LOG2E 1.44269504f
#define EXP_ROUND 12582912.0f /* 0x1.8p23: adding it rounds to an integer in the low mantissa bits */
#define EXP_LN2_HIGH 0.693359375f
#define EXP_LN2_LOW (-2.12194440e-4f)
#define EXP_P0 1.98756915e-4f
#define EXP_P1 1.39819995e-3f
#define EXP_P2 8.33345190e-3f
#define EXP_P3 4.16657960e-2f
#define EXP_P4 0.166666650f
#define EXP_P5 0.5f

static inline float exp_scalar(float x) {
    if (x != x) return x;
    if (x < EXP_LOW) return 0;
    float c = x > EXP_HIGH ? EXP_HIGH : x;
    float shifted = c * EXP_LOG2E + EXP_ROUND;
    float n = shifted - EXP_ROUND;
    float r = c - n * EXP_LN2_HIGH - n * EXP_LN2_LOW;
    float p = EXP_P0;
    p = p * r + EXP_P1;
    p = p * r + EXP_P2;
    p = p * r + EXP_P3;
    p = p * r + EXP_P4;
    p = p * r + EXP_P5;
    int32_t bits;
    memcpy(&bits, &shifted, 4);
    uint32_t scaleBits = (uint32_t)(bits - 0x4B400000 + 127) << 23;
    float scale;
    memcpy(&scale, &scaleBits, 4);
    return (p * r * r + r + 1) * scale;
}

/// Shift for a row: its maximum over non-NaN values when finite, else 0.
static inline float row_shift(float m) { return isfinite(m) ? m : 0; }

static void softmax_rows_scalar(const float *x, float *y, long rows, long cols, int log) {
    for (long i = 0; i < rows; i++, x += cols, y += cols) {
        float m = -INFINITY;
        for (long j = 0; j < cols; j++) m = x[j] > m ? x[j] : m;
        float shift = row_shift(m), total = 0;
        for (long j = 0; j < cols; j++) total += (y[j] = exp_scalar(x[j] - shift));
        if (log) {
            float lse = shift + logf(total);
            for (long j = 0; j < cols; j++) y[j] = x[j] - lse;
        } else {
            float inverse = 1 / total;
            for (long j = 0; j < cols; j++) y[j] *= inverse;
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

// One vector body for AVX2+FMA (8 lanes) and AVX-512 (16 lanes), spelled with macros so
// the two stay the same algorithm.
#define SOFTMAX_VECTOR(NAME, TARGET, VEC, LANES, SET1, LOAD, STORE, ADD, SUB, MUL, FMADD, MAX, MIN, \
                       CAST_TO_INT, CAST_TO_FLOAT, INT_ADD, INT_SHIFT_LEFT, INT_SET1, REDUCE_ADD, REDUCE_MAX, \
                       SELECT_LOW_ZERO, SELECT_NAN)                                                        \
    __attribute__((target(TARGET))) static inline VEC NAME##_exp(VEC x) {                                   \
        VEC c = MIN(MAX(x, SET1(EXP_LOW)), SET1(EXP_HIGH));                                                 \
        VEC shifted = FMADD(c, SET1(EXP_LOG2E), SET1(EXP_ROUND));                                           \
        VEC n = SUB(shifted, SET1(EXP_ROUND));                                                              \
        VEC r = FMADD(n, SET1(-EXP_LN2_HIGH), c);                                                          \
        r = FMADD(n, SET1(-EXP_LN2_LOW), r);                                                               \
        VEC p = FMADD(SET1(EXP_P0), r, SET1(EXP_P1));                                                       \
        p = FMADD(p, r, SET1(EXP_P2));                                                                      \
        p = FMADD(p, r, SET1(EXP_P3));                                                                      \
        p = FMADD(p, r, SET1(EXP_P4));                                                                      \
        p = FMADD(p, r, SET1(EXP_P5));                                                                      \
        VEC scale = CAST_TO_FLOAT(INT_SHIFT_LEFT(INT_ADD(CAST_TO_INT(shifted), INT_SET1(127 - 0x4B400000)), 23)); \
        VEC value = MUL(ADD(FMADD(p, MUL(r, r), r), SET1(1)), scale);                                       \
        value = SELECT_LOW_ZERO(value, x);                                                                  \
        return SELECT_NAN(value, x);                                                                        \
    }                                                                                                       \
    __attribute__((target(TARGET))) static void NAME(const float *x, float *y, long rows, long cols, int log) { \
        long whole = cols / LANES * LANES;                                                                  \
        for (long i = 0; i < rows; i++, x += cols, y += cols) {                                             \
            VEC vm = SET1(-INFINITY);                                                                       \
            /* MAX returns its second operand when the first is NaN, so NaNs are skipped. */               \
            for (long j = 0; j < whole; j += LANES) vm = MAX(LOAD(x + j), vm);                              \
            float m = REDUCE_MAX(vm);                                                                       \
            for (long j = whole; j < cols; j++) m = x[j] > m ? x[j] : m;                                    \
            float shift = row_shift(m);                                                                     \
            VEC vs = SET1(shift), vt = SET1(0);                                                             \
            for (long j = 0; j < whole; j += LANES) {                                                       \
                VEC e = NAME##_exp(SUB(LOAD(x + j), vs));                                                   \
                STORE(y + j, e);                                                                            \
                vt = ADD(vt, e);                                                                            \
            }                                                                                               \
            float total = REDUCE_ADD(vt);                                                                   \
            for (long j = whole; j < cols; j++) total += (y[j] = exp_scalar(x[j] - shift));                \
            if (log) {                                                                                      \
                float lse = shift + logf(total);                                                            \
                VEC vl = SET1(lse);                                                                         \
                for (long j = 0; j < whole; j += LANES) STORE(y + j, SUB(LOAD(x + j), vl));                 \
                for (long j = whole; j < cols; j++) y[j] = x[j] - lse;                                      \
            } else {                                                                                        \
                float inverse = 1 / total;                                                                  \
                VEC vi = SET1(inverse);                                                                     \
                for (long j = 0; j < whole; j += LANES) STORE(y + j, MUL(LOAD(y + j), vi));                 \
                for (long j = whole; j < cols; j++) y[j] *= inverse;                                        \
            }                                                                                               \
        }                                                                                                   \
    }

__attribute__((target("avx2,fma"))) static inline float avx2_reduce_add(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
__attribute__((target("avx2,fma"))) static inline float avx2_reduce_max(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
__attribute__((target("avx2,fma"))) static inline __m256 avx2_low_zero(__m256 value, __m256 x) {
    return _mm256_blendv_ps(value, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LOW), _CMP_LT_OQ));
}
__attribute__((target("avx2,fma"))) static inline __m256 avx2_nan(__m256 value, __m256 x) {
    return _mm256_blendv_ps(value, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}
SOFTMAX_VECTOR(softmax_rows_avx2, "avx2,fma", __m256, 8, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps,
               _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, _mm256_fmadd_ps, _mm256_max_ps, _mm256_min_ps,
               _mm256_castps_si256, _mm256_castsi256_ps, _mm256_add_epi32, _mm256_slli_epi32, _mm256_set1_epi32,
               avx2_reduce_add, avx2_reduce_max, avx2_low_zero, avx2_nan)

__attribute__((target("avx512f"))) static inline __m512 avx512_low_zero(__m512 value, __m512 x) {
    return _mm512_mask_mov_ps(value, _mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_LOW), _CMP_LT_OQ), _mm512_setzero_ps());
}
__attribute__((target("avx512f"))) static inline __m512 avx512_nan(__m512 value, __m512 x) {
    return _mm512_mask_mov_ps(value, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}
SOFTMAX_VECTOR(softmax_rows_avx512, "avx512f", __m512, 16, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps,
               _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps, _mm512_fmadd_ps, _mm512_max_ps, _mm512_min_ps,
               _mm512_castps_si512, _mm512_castsi512_ps, _mm512_add_epi32, _mm512_slli_epi32, _mm512_set1_epi32,
               _mm512_reduce_add_ps, _mm512_reduce_max_ps, avx512_low_zero, avx512_nan)

ember_isa ember_cpu_isa(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return EMBER_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return EMBER_ISA_AVX2;
    return EMBER_ISA_SCALAR;
}

void ember_softmax_rows_isa(ember_isa isa, const float *x, float *y, long rows, long cols, int log) {
    switch (isa) {
    case EMBER_ISA_AVX512: softmax_rows_avx512(x, y, rows, cols, log); break;
    case EMBER_ISA_AVX2: softmax_rows_avx2(x, y, rows, cols, log); break;
    default: softmax_rows_scalar(x, y, rows, cols, log); break;
    }
}

#else

ember_isa ember_cpu_isa(void) { return EMBER_ISA_SCALAR; }

void ember_softmax_rows_isa(ember_isa isa, const float *x, float *y, long rows, long cols, int log) {
    (void)isa;
    softmax_rows_scalar(x, y, rows, cols, log);
}

#endif

void ember_softmax_rows(const float *x, float *y, long rows, long cols, int log) {
    ember_softmax_rows_isa(ember_cpu_isa(), x, y, rows, cols, log);
}
