// Ember's GEMM: C[b] = alpha * A[b] x B[b] + beta * C[b], row-major, no transposes (the
// host makes transposed operands row-major first). Each work-item computes a 4 x 16 block
// of C with float16 vectors, which PoCL compiles to 512-bit (or narrower) vector FMAs;
// blocks at the right and bottom edges take a bounds-checked path. A device runs this or
// CLBlast, whichever measured faster there (OpenCLBackend.gemmChoice).

__kernel void gemm_block(int M, int N, int K, float alpha, float beta,
                         __global const float* A, int a_off, int lda, int a_batch,
                         __global const float* B, int b_off, int ldb, int b_batch,
                         __global float* C, int c_off, int ldc, int c_batch) {
    int n0 = get_global_id(0) * 16;
    int m0 = get_global_id(1) * 4;
    int batch = get_global_id(2);
    if (n0 >= N || m0 >= M) return;
    __global const float* a = A + a_off + (long)batch * a_batch + (long)m0 * lda;
    __global const float* b = B + b_off + (long)batch * b_batch + n0;
    __global float* c = C + c_off + (long)batch * c_batch + (long)m0 * ldc + n0;
    if (n0 + 16 <= N && m0 + 4 <= M) {
        float16 c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f;
        for (int k = 0; k < K; ++k) {
            float16 bk = vload16(0, b + (long)k * ldb);
            c0 = fma((float16)(a[k]), bk, c0);
            c1 = fma((float16)(a[lda + k]), bk, c1);
            c2 = fma((float16)(a[2 * lda + k]), bk, c2);
            c3 = fma((float16)(a[3 * lda + k]), bk, c3);
        }
        if (beta == 0.0f) {
            vstore16(alpha * c0, 0, c);
            vstore16(alpha * c1, 0, c + ldc);
            vstore16(alpha * c2, 0, c + 2 * ldc);
            vstore16(alpha * c3, 0, c + 3 * ldc);
        } else {
            vstore16(alpha * c0 + beta * vload16(0, c), 0, c);
            vstore16(alpha * c1 + beta * vload16(0, c + ldc), 0, c + ldc);
            vstore16(alpha * c2 + beta * vload16(0, c + 2 * ldc), 0, c + 2 * ldc);
            vstore16(alpha * c3 + beta * vload16(0, c + 3 * ldc), 0, c + 3 * ldc);
        }
        return;
    }
    int rows = min(4, M - m0), cols = min(16, N - n0);
    for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < cols; ++j) {
            float sum = 0.0f;
            for (int k = 0; k < K; ++k) sum = fma(a[(long)r * lda + k], b[(long)k * ldb + j], sum);
            __global float* out = c + (long)r * ldc + j;
            *out = beta == 0.0f ? alpha * sum : alpha * sum + beta * *out;
        }
    }
}
