// Median GFLOP/s of Ember's bfloat16 GEMM (ember_gemm_bf16) against OpenBLAS's float32 SGEMM on
// square row-major products, no transposes, alpha 1, beta 0, both on the same thread count, the
// two calls interleaved rep by rep.
//
// OpenBLAS's idle threads spin for a while (OPENBLAS_THREAD_TIMEOUT, about 0.1 s by default)
// after each call and would take a core from whatever runs next, so the benchmark pauses
// between calls (the last argument, in ms; 0 with OPENBLAS_THREAD_TIMEOUT=4 does as well).
//
// Build against the release objects of the CPUKernels target and run, from the package root:
//   swift build -c release --target CPUKernels
//   clang -O2 -ISources/CPUKernels/include -I/usr/include/x86_64-linux-gnu/openblas-pthread \
//       Benchmarks/cpu_kernels/bf16_gemm_bench.c .build/release/CPUKernels.build/{gemm_bf16,convert,softmax}.c.o \
//       -lopenblas -lpthread -lm -o /tmp/bf16_gemm_bench
//   OPENBLAS_CORETYPE=SkylakeX /tmp/bf16_gemm_bench [reps 7] [threads 2] [pause ms 150] [sizes 1024 2048 ...]
#define _POSIX_C_SOURCE 200809L
#include "cpu_kernels.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int ascending(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 7, threads = argc > 2 ? atoi(argv[2]) : 2;
    long pause = argc > 3 ? atol(argv[3]) : 150;
    if (reps < 1 || reps > 100 || threads < 1) {
        fprintf(stderr, "usage: %s [reps 1-100] [threads] [pause ms] [sizes...]\n", argv[0]);
        return 2;
    }
    long defaults[] = {1024, 2048};
    long count = argc > 4 ? argc - 4 : 2;
    openblas_set_num_threads(threads);
    ember_gemm_set_threads(threads);
    printf("OpenBLAS %s, %d threads, bf16 path %s, %d reps, %ld ms pauses\n", openblas_get_corename(), threads,
           ember_cpu_isa_bf16() == EMBER_ISA_AMX_BF16 ? "AMX" : ember_cpu_isa_bf16() == EMBER_ISA_AVX512_BF16 ? "AVX-512 BF16" : "float32 fallback", reps, pause);
    for (long s = 0; s < count; s++) {
        long n = argc > 4 ? atol(argv[4 + s]) : defaults[s];
        float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
        uint16_t *a16 = malloc(2 * n * n), *b16 = malloc(2 * n * n);
        if (!a || !b || !c || !a16 || !b16) return 1;
        srand(1);
        for (long i = 0; i < n * n; i++) {
            a[i] = (float)rand() / (float)RAND_MAX - 0.5f;
            b[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        }
        ember_f32_to_bf16(a, a16, n * n);
        ember_f32_to_bf16(b, b16, n * n);
        double flops = 2.0 * (double)n * (double)n * (double)n, bf16[100], sgemm[100];
        // One untimed call of each warms caches, page tables and OpenBLAS's thread pool.
        ember_gemm_bf16(0, 0, n, n, n, 1, a16, n, b16, n, 0, c, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        for (int r = 0; r < reps; r++) {
            pause_ms(pause);
            double t = seconds();
            ember_gemm_bf16(0, 0, n, n, n, 1, a16, n, b16, n, 0, c, n);
            bf16[r] = flops / (seconds() - t) * 1e-9;
            pause_ms(pause);
            t = seconds();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
            sgemm[r] = flops / (seconds() - t) * 1e-9;
        }
        qsort(bf16, (size_t)reps, sizeof(double), ascending);
        qsort(sgemm, (size_t)reps, sizeof(double), ascending);
        printf("N=%ld: bf16 %.1f GFLOP/s (%.1f-%.1f), sgemm %.1f (%.1f-%.1f), ratio %.2f\n", n, bf16[reps / 2], bf16[0],
               bf16[reps - 1], sgemm[reps / 2], sgemm[0], sgemm[reps - 1], bf16[reps / 2] / sgemm[reps / 2]);
        free(a);
        free(b);
        free(c);
        free(a16);
        free(b16);
    }
    return 0;
}
