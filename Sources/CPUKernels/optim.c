// Float32 optimizer updates (SGD, Adam/AdamW, RMSprop) for the CPU backend. In Swift,
// Float.squareRoot() calls libm's sqrtf, which may set errno, so LLVM keeps the loop scalar,
// and SGD's loop stayed scalar too (its parameter and buffer pointers may alias); here the
// pointers are restrict, the loops use __builtin_elementwise_sqrt (the IEEE square root, no
// errno), and they are compiled for AVX-512 and AVX2 as well as the baseline, picked at run time. Each
// element takes the composed update's operations in its order (Optim/Optimizer.swift, the
// Swift loop of CPUBackend+Optimizer.swift): with contraction off, no FMA, and IEEE division
// and square root, every rounding is the same, so each version is bit for bit the others.
#include "cpu_kernels.h"

#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)

static inline __attribute__((always_inline)) void adam_f32(float *restrict p, const float *restrict g, float *restrict m,
                                                            float *restrict v, long n, const ember_adam_step *s) {
    const float decay = s->weight_decay, factor = s->decay_factor, beta1 = s->beta1, keep1 = s->one_minus_beta1;
    const float beta2 = s->beta2, keep2 = s->one_minus_beta2, step = s->step_size, correction2 = s->correction2, eps = s->eps;
    const int scales = decay != 0 && s->decoupled, adds = decay != 0 && !s->decoupled;
    for (long i = 0; i < n; i++) {
        float x0 = p[i], g0 = g[i];
        float x = scales ? x0 * factor : x0;
        float d = adds ? g0 + x0 * decay : g0;
        float mean = m[i] * beta1 + d * keep1;
        float square = v[i] * beta2 + d * d * keep2;
        m[i] = mean;
        v[i] = square;
        float denominator = __builtin_elementwise_sqrt(square / correction2) + eps;
        p[i] = x - mean * step / denominator;
    }
}

static inline __attribute__((always_inline)) void rmsprop_f32(float *restrict p, const float *restrict g, float *restrict sq,
                                                               float *restrict avg, float *restrict buf, long n,
                                                               const ember_rmsprop_step *s) {
    const float lr = s->lr, decay = s->weight_decay, alpha = s->alpha, keep = s->one_minus_alpha, eps = s->eps, beta = s->momentum;
    const int decays = decay != 0;
    for (long i = 0; i < n; i++) {
        float x = p[i], g0 = g[i];
        float d = decays ? g0 + x * decay : g0;
        float square = sq[i] * alpha + d * d * keep;
        sq[i] = square;
        float average;
        if (avg) {
            float mean = avg[i] * alpha + d * keep;
            avg[i] = mean;
            average = __builtin_elementwise_sqrt(square - mean * mean) + eps;
        } else {
            average = __builtin_elementwise_sqrt(square) + eps;
        }
        if (buf) {
            float b = buf[i] * beta + d / average;
            buf[i] = b;
            p[i] = x - b * lr;
        } else {
            p[i] = x - d / average * lr;
        }
    }
}

static inline __attribute__((always_inline)) void sgd_f32(float *restrict p, const float *restrict g, float *restrict buf, long n,
                                                           const ember_sgd_step *s) {
    const float lr = s->lr, decay = s->weight_decay, beta = s->momentum, keep = s->dampening_keep;
    const int decays = decay != 0, dampened = s->dampened, nesterov = s->nesterov, first = s->first_step;
    for (long i = 0; i < n; i++) {
        float x = p[i], g0 = g[i];
        float d = decays ? g0 + x * decay : g0;
        if (buf) {
            float m = first ? d : buf[i] * beta + (dampened ? d * keep : d);
            buf[i] = m;
            float step = nesterov ? d + m * beta : m;
            p[i] = x - step * lr;
        } else {
            p[i] = x - d * lr;
        }
    }
}

#define OPTIM_VERSION(SUFFIX, TARGET)                                                                                      \
    TARGET static void sgd_f32_##SUFFIX(float *p, const float *g, float *buf, long n, const ember_sgd_step *s) {       \
        if (buf) sgd_f32(p, g, buf, n, s);                                                                              \
        else sgd_f32(p, g, 0, n, s);                                                                                    \
    }                                                                                                                   \
    TARGET static void adam_f32_##SUFFIX(float *p, const float *g, float *m, float *v, long n, const ember_adam_step *s) { \
        adam_f32(p, g, m, v, n, s);                                                                                     \
    }                                                                                                                   \
    TARGET static void rmsprop_f32_##SUFFIX(float *p, const float *g, float *sq, float *avg, float *buf, long n,         \
                                            const ember_rmsprop_step *s) {                                              \
        if (avg && buf) rmsprop_f32(p, g, sq, avg, buf, n, s);                                                          \
        else if (avg) rmsprop_f32(p, g, sq, avg, 0, n, s);                                                              \
        else if (buf) rmsprop_f32(p, g, sq, 0, buf, n, s);                                                              \
        else rmsprop_f32(p, g, sq, 0, 0, n, s);                                                                         \
    }

OPTIM_VERSION(scalar, )
#if defined(__x86_64__)
OPTIM_VERSION(avx2, __attribute__((target("avx2"))))
OPTIM_VERSION(avx512, __attribute__((target("avx512f"))))
#endif

void ember_sgd_f32_isa(ember_isa isa, float *p, const float *g, float *momentum_buffer, long n, const ember_sgd_step *step) {
#if defined(__x86_64__)
    if (isa >= EMBER_ISA_AVX512) return sgd_f32_avx512(p, g, momentum_buffer, n, step);
    if (isa == EMBER_ISA_AVX2) return sgd_f32_avx2(p, g, momentum_buffer, n, step);
#endif
    (void)isa;
    sgd_f32_scalar(p, g, momentum_buffer, n, step);
}

void ember_adam_f32_isa(ember_isa isa, float *p, const float *g, float *m, float *v, long n, const ember_adam_step *step) {
#if defined(__x86_64__)
    if (isa >= EMBER_ISA_AVX512) return adam_f32_avx512(p, g, m, v, n, step);
    if (isa == EMBER_ISA_AVX2) return adam_f32_avx2(p, g, m, v, n, step);
#endif
    (void)isa;
    adam_f32_scalar(p, g, m, v, n, step);
}

void ember_rmsprop_f32_isa(ember_isa isa, float *p, const float *g, float *square_avg, float *grad_avg, float *momentum_buffer,
                           long n, const ember_rmsprop_step *step) {
#if defined(__x86_64__)
    if (isa >= EMBER_ISA_AVX512) return rmsprop_f32_avx512(p, g, square_avg, grad_avg, momentum_buffer, n, step);
    if (isa == EMBER_ISA_AVX2) return rmsprop_f32_avx2(p, g, square_avg, grad_avg, momentum_buffer, n, step);
#endif
    (void)isa;
    rmsprop_f32_scalar(p, g, square_avg, grad_avg, momentum_buffer, n, step);
}

void ember_sgd_f32(float *p, const float *g, float *momentum_buffer, long n, const ember_sgd_step *step) {
    ember_sgd_f32_isa(ember_cpu_isa(), p, g, momentum_buffer, n, step);
}

void ember_adam_f32(float *p, const float *g, float *m, float *v, long n, const ember_adam_step *step) {
    ember_adam_f32_isa(ember_cpu_isa(), p, g, m, v, n, step);
}

void ember_rmsprop_f32(float *p, const float *g, float *square_avg, float *grad_avg, float *momentum_buffer, long n,
                       const ember_rmsprop_step *step) {
    ember_rmsprop_f32_isa(ember_cpu_isa(), p, g, square_avg, grad_avg, momentum_buffer, n, step);
}
