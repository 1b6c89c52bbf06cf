#ifndef EMBER_CPU_KERNELS_H
#define EMBER_CPU_KERNELS_H

/// Instruction sets the CPU kernels have code for.
typedef enum { EMBER_ISA_SCALAR = 0, EMBER_ISA_AVX2 = 1, EMBER_ISA_AVX512 = 2 } ember_isa;

/// The widest instruction set this CPU supports that the kernels have code for.
ember_isa ember_cpu_isa(void);

/// Row-wise softmax (or log-softmax when `log` is non-zero) of `rows` contiguous rows of
/// `cols` floats from `x` into `y`, on the calling thread. The row maximum ignores NaN; a
/// row whose maximum is infinite is not shifted; NaN inputs give NaN outputs. Uses AVX-512
/// or AVX2+FMA code when the CPU has it (checked at run time), portable C otherwise.
void ember_softmax_rows(const float *x, float *y, long rows, long cols, int log);

/// `ember_softmax_rows` with the code for `isa`, which must be at most `ember_cpu_isa()`
/// (tests run every path the machine supports).
void ember_softmax_rows_isa(ember_isa isa, const float *x, float *y, long rows, long cols, int log);

/// The name of the kernel set OpenBLAS runs (`SkylakeX`, `Haswell`, ...), or NULL when the
/// BLAS is not OpenBLAS.
const char *ember_blas_core(void);

/// The kernel set OpenBLAS had picked at load, when Ember replaced it with one for the
/// instructions the CPU has (OpenBLAS falls back to "Prescott" on CPUs it does not
/// recognise); NULL when it was left as it was.
const char *ember_blas_core_reselected_from(void);

#endif
