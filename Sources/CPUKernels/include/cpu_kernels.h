#ifndef EMBER_CPU_KERNELS_H
#define EMBER_CPU_KERNELS_H

#include <stdint.h>

/// Instruction sets the CPU kernels have code for, each a superset of the ones before it.
/// `EMBER_ISA_AVX512_BF16` (AVX-512F with the BF16 dot products) and `EMBER_ISA_AMX_BF16` (that
/// and the AMX BF16 tile instructions) only matter to the bfloat16 GEMM; every other kernel
/// treats them as `EMBER_ISA_AVX512`.
typedef enum {
    EMBER_ISA_SCALAR = 0,
    EMBER_ISA_AVX2 = 1,
    EMBER_ISA_AVX512 = 2,
    EMBER_ISA_AVX512_BF16 = 3,
    EMBER_ISA_AMX_BF16 = 4
} ember_isa;

/// The widest of scalar, AVX2 (with FMA) and AVX-512 that this CPU supports; never
/// `EMBER_ISA_AVX512_BF16` or `EMBER_ISA_AMX_BF16` (see `ember_cpu_isa_bf16`).
ember_isa ember_cpu_isa(void);

/// The number of cores in this process's CPU affinity mask (what `taskset`, `mpirun`'s
/// binding or a container's cpuset leaves it), or 0 where the system cannot say.
int ember_usable_cpus(void);

/// `EMBER_ISA_AMX_BF16` when the CPU has AVX-512 BF16 and AMX-BF16 and the kernel lets this
/// process use tile state (asked once, with `arch_prctl(ARCH_REQ_XCOMP_PERM)`), else
/// `EMBER_ISA_AVX512_BF16` when it has the AVX-512 BF16 instructions, else `ember_cpu_isa()`:
/// the widest code `ember_gemm_bf16` can run here.
ember_isa ember_cpu_isa_bf16(void);

/// Row-wise softmax (or log-softmax when `log` is non-zero) of `rows` contiguous rows of
/// `cols` floats from `x` into `y`, on the calling thread. The row maximum ignores NaN; a
/// row whose maximum is infinite is not shifted; NaN inputs give NaN outputs. Uses AVX-512
/// or AVX2+FMA code when the CPU has it (checked at run time), portable C otherwise.
void ember_softmax_rows(const float *x, float *y, long rows, long cols, int log);

/// `ember_softmax_rows` with the code for `isa`, which must be at most `ember_cpu_isa()`
/// (tests run every path the machine supports).
void ember_softmax_rows_isa(ember_isa isa, const float *x, float *y, long rows, long cols, int log);

/// The exact GELU, y = x·Φ(x) = 0.5·x·(1 + erf(x/√2)), of `n` contiguous floats, with the erf
/// of `VectorMath` (2.3 ulp); AVX-512 or AVX2+FMA code where the CPU has it, portable C otherwise.
void ember_gelu(const float *x, float *y, long n);

/// GELU's backward, y = g·(Φ(x) + x·φ(x)), of `n` contiguous floats (see `ember_gelu`).
void ember_gelu_gradient(const float *g, const float *x, float *y, long n);

/// `ember_gelu` with the code for `isa`, at most `ember_cpu_isa()` (tests run every path).
void ember_gelu_isa(ember_isa isa, const float *x, float *y, long n);

/// `ember_gelu_gradient` with the code for `isa`, at most `ember_cpu_isa()`.
void ember_gelu_gradient_isa(ember_isa isa, const float *g, const float *x, float *y, long n);

/// The name of the kernel set OpenBLAS runs (`SkylakeX`, `Haswell`, ...), or NULL when the
/// BLAS is not OpenBLAS.
const char *ember_blas_core(void);

/// The kernel set OpenBLAS had picked at load, when Ember replaced it with one for the
/// instructions the CPU has (OpenBLAS falls back to "Prescott" on CPUs it does not
/// recognise); NULL when it was left as it was.
const char *ember_blas_core_reselected_from(void);

/// Row-major C[m x n] = alpha * op(A) * op(B) + beta * C, A and B bfloat16 (uint16_t bit patterns,
/// the top half of a float32), C float32 with leading dimension ldc; op(X) = X or X^T per transA/transB
/// (A is m x k when !transA with leading dimension lda, else k x m; B likewise k x n / n x k).
/// Accumulates in float32. Uses AMX tiles, else AVX-512 BF16 dot products, where the CPU has them
/// (checked at run time; both treat subnormal inputs and partial sums as zero), else converts panels to float32 and
/// computes with AVX-512F, AVX2+FMA or portable code. k = 0 or alpha = 0 gives beta * C; C is not
/// read when beta is 0. Large products run on `ember_gemm_threads()` threads.
void ember_gemm_bf16(int transA, int transB, long m, long n, long k, float alpha,
                     const uint16_t *a, long lda, const uint16_t *b, long ldb, float beta, float *c, long ldc);

/// `ember_gemm_bf16` with the code for `isa`, which must be at most `ember_cpu_isa_bf16()` (tests
/// run every path the machine supports).
void ember_gemm_bf16_isa(ember_isa isa, int transA, int transB, long m, long n, long k, float alpha,
                         const uint16_t *a, long lda, const uint16_t *b, long ldb, float beta, float *c, long ldc);

/// `ember_gemm_bf16` for IEEE half operands: packed panels are converted to float32 and run
/// through the float32 micro-kernel of the widest instruction set the CPU has.
void ember_gemm_f16(int transA, int transB, long m, long n, long k, float alpha,
                    const uint16_t *a, long lda, const uint16_t *b, long ldb, float beta, float *c, long ldc);

/// `ember_gemm_f16` with the code for `isa`, which must be at most `ember_cpu_isa()`.
void ember_gemm_f16_isa(ember_isa isa, int transA, int transB, long m, long n, long k, float alpha,
                        const uint16_t *a, long lda, const uint16_t *b, long ldb, float beta, float *c, long ldc);

/// Sets how many threads the 16-bit GEMMs split large products over; 0 or less restores the
/// default, the number of online CPUs.
void ember_gemm_set_threads(int threads);

/// The thread count the 16-bit GEMMs use (see `ember_gemm_set_threads`).
int ember_gemm_threads(void);

/// Float32 to bfloat16 (the bit patterns of the top half of a float32), `n` values, rounding to
/// nearest even. Subnormals are kept; a NaN stays a quiet NaN of the same sign.
void ember_f32_to_bf16(const float *x, uint16_t *y, long n);

/// Bfloat16 to float32, `n` values (exact).
void ember_bf16_to_f32(const uint16_t *x, float *y, long n);

/// Float32 to IEEE half precision, `n` values, rounding to nearest even: values from 65520 up
/// become infinity, small ones half subnormals or zero; a NaN stays a quiet NaN of the same sign.
/// Uses F16C or AVX-512 where the CPU has them.
void ember_f32_to_f16(const float *x, uint16_t *y, long n);

/// IEEE half precision to float32, `n` values (exact; a signalling NaN becomes quiet).
void ember_f16_to_f32(const uint16_t *x, float *y, long n);

/// The conversions with the code for `isa` (at most `ember_cpu_isa()`), for tests; every path
/// gives the same bits.
void ember_f32_to_bf16_isa(ember_isa isa, const float *x, uint16_t *y, long n);
/// See `ember_f32_to_bf16_isa`.
void ember_bf16_to_f32_isa(ember_isa isa, const uint16_t *x, float *y, long n);
/// See `ember_f32_to_bf16_isa`.
void ember_f32_to_f16_isa(ember_isa isa, const float *x, uint16_t *y, long n);
/// See `ember_f32_to_bf16_isa`.
void ember_f16_to_f32_isa(ember_isa isa, const uint16_t *x, float *y, long n);

/// The storage format of the 16-bit kernels: IEEE half or bfloat16 (uint16_t bit patterns).
typedef enum { EMBER_FLOAT16 = 0, EMBER_BFLOAT16 = 1 } ember_half_format;

/// How many parts `ember_gemm16_part` splits an m x n x k product of `format` operands into for
/// `threads` threads: 1 when the product is too small to share.
long ember_gemm16_parts(ember_half_format format, int threads, long m, long n, long k);

/// Part `part` (from 0) of `parts` of the product `ember_gemm_bf16` (EMBER_BFLOAT16) or
/// `ember_gemm_f16` (EMBER_FLOAT16) computes, on the calling thread. The parts of one product
/// (`parts` from `ember_gemm16_parts`) are disjoint blocks of rows or of columns of C, so threads
/// can run them side by side; part 0 of 1 is the whole product. C is float32, or with `narrowC`
/// 16-bit elements of `format`: the float32 product rounded once to nearest even (C widened
/// first when beta is not 0).
void ember_gemm16_part(ember_half_format format, long part, long parts, int transA, int transB, long m, long n, long k,
                       float alpha, const uint16_t *a, long lda, const uint16_t *b, long ldb, float beta, void *c,
                       int narrowC, long ldc);

/// The binary ops of `ember_half_binary`, with the float32 math of Swift's function objects
/// (`Elementwise.Add`, ...): add, sub, mul, div, maximum and minimum (NaN when either side is
/// NaN), and ReLU's gradient (`b > 0 ? a : 0`).
typedef enum {
    EMBER_HALF_ADD, EMBER_HALF_SUB, EMBER_HALF_MUL, EMBER_HALF_DIV, EMBER_HALF_MAXIMUM, EMBER_HALF_MINIMUM,
    EMBER_HALF_RELU_GRADIENT, EMBER_HALF_BINARY_OP_COUNT
} ember_half_binary_op;

/// The unary ops of `ember_half_unary`: neg, abs, relu (`x > 0 ? x : 0`) and square.
typedef enum { EMBER_HALF_NEG, EMBER_HALF_ABS, EMBER_HALF_RELU, EMBER_HALF_SQUARE, EMBER_HALF_UNARY_OP_COUNT } ember_half_unary_op;

/// y[i] = op(a[i], b[i]) over `n` contiguous elements of `format`, computed in float32 and
/// rounded to nearest even: the bits of widening, computing and narrowing each element. A NULL
/// `a` (or `b`) stands for the scalar `sa` (`sb`) at every element. One pass over memory; AVX2
/// with F16C where the CPU has it (checked at run time), portable code otherwise.
void ember_half_binary(ember_half_binary_op op, ember_half_format format, const uint16_t *a, float sa, const uint16_t *b,
                       float sb, uint16_t *y, long n);

/// y[i] = op(x[i]) over `n` contiguous elements of `format` (see `ember_half_binary`).
void ember_half_unary(ember_half_unary_op op, ember_half_format format, const uint16_t *x, uint16_t *y, long n);

/// The float32 sum of `n` contiguous elements of `format`, over 32 partial sums.
float ember_half_sum(ember_half_format format, const uint16_t *x, long n);

/// `ember_half_binary` with the code for `isa`, at most `ember_cpu_isa()` (tests run every path).
void ember_half_binary_isa(ember_isa isa, ember_half_binary_op op, ember_half_format format, const uint16_t *a, float sa,
                           const uint16_t *b, float sb, uint16_t *y, long n);
/// `ember_half_unary` with the code for `isa`, at most `ember_cpu_isa()`.
void ember_half_unary_isa(ember_isa isa, ember_half_unary_op op, ember_half_format format, const uint16_t *x, uint16_t *y, long n);
/// `ember_half_sum` with the code for `isa`, at most `ember_cpu_isa()`.
float ember_half_sum_isa(ember_isa isa, ember_half_format format, const uint16_t *x, long n);

/// The scalars of one SGD step (Swift's `OptimizerRule.SGDStep`): `dampening_keep` is
/// `1 - dampening`, used when `dampened`; on the first step the buffer takes the gradient.
typedef struct {
    float lr, weight_decay, momentum, dampening_keep;
    int dampened, nesterov, first_step;
} ember_sgd_step;

/// The scalars of one Adam or AdamW step (Swift's `OptimizerRule.AdamStep`): decoupled decay
/// multiplies the parameter by `decay_factor`, L2 decay adds `weight_decay * p` to the gradient
/// (neither when `weight_decay` is 0); `step_size` is `lr / (1 - beta1^t)`, `correction2` `1 - beta2^t`.
typedef struct {
    float weight_decay;
    int decoupled;
    float decay_factor, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, correction2, eps;
} ember_adam_step;

/// The scalars of one RMSprop step (Swift's `OptimizerRule.RMSpropStep`).
typedef struct {
    float lr, weight_decay, alpha, one_minus_alpha, eps, momentum;
} ember_rmsprop_step;

/// One SGD update of `n` float32 parameters `p` in place from gradients `g`, with the composed
/// update's operations in its order; `momentum_buffer` is NULL when the step has no momentum.
void ember_sgd_f32(float *p, const float *g, float *momentum_buffer, long n, const ember_sgd_step *step);

/// `ember_sgd_f32` with the code for `isa`, which must be at most `ember_cpu_isa()`.
void ember_sgd_f32_isa(ember_isa isa, float *p, const float *g, float *momentum_buffer, long n, const ember_sgd_step *step);

/// One Adam/AdamW update of `n` float32 parameters `p` and their states `m` (exp_avg) and `v`
/// (exp_avg_sq) in place from gradients `g`, with the composed update's operations in its order
/// (no contraction, IEEE division and square root): bit for bit the CPU backend's Swift loop.
/// The four arrays must not overlap. AVX-512 or AVX2 code where the CPU has it.
void ember_adam_f32(float *p, const float *g, float *m, float *v, long n, const ember_adam_step *step);

/// `ember_adam_f32` with the code for `isa`, which must be at most `ember_cpu_isa()`.
void ember_adam_f32_isa(ember_isa isa, float *p, const float *g, float *m, float *v, long n, const ember_adam_step *step);

/// One RMSprop update of `n` float32 parameters, as `ember_adam_f32`: `grad_avg` (centered) and
/// `momentum_buffer` (momentum > 0) are NULL when the step has none.
void ember_rmsprop_f32(float *p, const float *g, float *square_avg, float *grad_avg, float *momentum_buffer, long n,
                       const ember_rmsprop_step *step);

/// `ember_rmsprop_f32` with the code for `isa`, which must be at most `ember_cpu_isa()`.
void ember_rmsprop_f32_isa(ember_isa isa, float *p, const float *g, float *square_avg, float *grad_avg, float *momentum_buffer,
                           long n, const ember_rmsprop_step *step);

#endif
