// Ember's GEMM: C[b] = alpha * op(A[b]) x op(B[b]) + beta * C[b], row-major. Two kernels
// cover the operand layouts. gemm_block serves A as stored ([M, K]) and A stored transposed
// ([K, M]): element (r, k) of op(A) is A[r * a_rs + k * a_ks], strides the host passes (lda
// and 1, or 1 and lda); it computes a 4 x 16 block of C per work-item from float16 rows of a
// row-major B, reading A one scalar at a time, so A's strides cost nothing. gemm_block_nt
// (B stored transposed, [N, K]) computes a 4 x 4 block from float16 runs along K of both; the
// host runs it only on devices with 16-wide float vectors (OpenCLBackend.readsTransposedB) and
// with A as stored; otherwise it copies B row-major for gemm_block. PoCL compiles these to
// 512-bit (or narrower) vector FMAs. Blocks at the right and bottom edges take a bounds-checked
// path. A device runs these or CLBlast, whichever measured faster there
// (OpenCLBackend.gemmChoice). A and B are of the STORAGE type (storage.cl: float16 and bfloat16
// operands are widened as they are loaded, so the product accumulates in float32 without
// float32 copies of them), and so is C: each element is the float32 sum rounded once.
// A bias (PyTorch's addmm; the host passes it only with beta == 0) is added before that
// rounding: element (r, j) of C gains bias[bias_off + r * bias_rs + j * bias_cs], a vector
// along C's rows (bias_rs = 1) or its columns (bias_cs = 1); both strides are 0 without one.

// Writes alpha * value (+ beta * old, + the bias of row r, column j) to element i of p.
#define GEMM_STORE(p, i, r, j, value) \
    STORE(p, i, (beta == 0.0f ? alpha * (value) : alpha * (value) + beta * LOAD(p, i)) + BIAS_AT(r, j))

// The bias of element (m0 + r, n0 + j) of C, 0 without a bias.
#define BIAS_AT(r, j) (bias_rs == 0 && bias_cs == 0 ? 0.0f : LOAD(bias, bias_off + (long)(m0 + (r)) * bias_rs + (long)(n0 + (j)) * bias_cs))

// The bias of row m0 + r, columns n0 .. n0 + 15 of C.
#define BIAS16(r) (bias_cs != 0 ? LOAD16(bias, bias_off + n0) : (float16)(BIAS_AT(r, 0)))

#define BIAS_ARGUMENTS __global const ELEM* bias, int bias_off, int bias_rs, int bias_cs

// Element (m0 + r, k) of op(A).
#define A_AT(r, k) LOAD(a, (long)(r) * a_rs + (long)(k) * a_ks)

__kernel void gemm_block(int M, int N, int K, float alpha, float beta,
                         __global const ELEM* A, int a_off, int a_rs, int a_ks, int a_batch,
                         __global const ELEM* B, int b_off, int ldb, int b_batch,
                         __global ELEM* C, int c_off, int ldc, int c_batch, BIAS_ARGUMENTS) {
    int n0 = get_global_id(0) * 16;
    int m0 = get_global_id(1) * 4;
    int batch = get_global_id(2);
    if (n0 >= N || m0 >= M) return;
    __global const ELEM* a = A + a_off + (long)batch * a_batch + (long)m0 * a_rs;
    __global const ELEM* b = B + b_off + (long)batch * b_batch + n0;
    __global ELEM* c = C + c_off + (long)batch * c_batch + (long)m0 * ldc + n0;
    if (n0 + 16 <= N && m0 + 4 <= M) {
        float16 c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f;
        for (int k = 0; k < K; ++k) {
            float16 bk = LOAD16(b, (long)k * ldb);
            c0 = fma((float16)(A_AT(0, k)), bk, c0);
            c1 = fma((float16)(A_AT(1, k)), bk, c1);
            c2 = fma((float16)(A_AT(2, k)), bk, c2);
            c3 = fma((float16)(A_AT(3, k)), bk, c3);
        }
        if (bias_rs != 0 || bias_cs != 0) {
            STORE16(c, 0, alpha * c0 + BIAS16(0));
            STORE16(c, ldc, alpha * c1 + BIAS16(1));
            STORE16(c, 2 * ldc, alpha * c2 + BIAS16(2));
            STORE16(c, 3 * ldc, alpha * c3 + BIAS16(3));
        } else if (beta == 0.0f) {
            STORE16(c, 0, alpha * c0);
            STORE16(c, ldc, alpha * c1);
            STORE16(c, 2 * ldc, alpha * c2);
            STORE16(c, 3 * ldc, alpha * c3);
        } else {
            STORE16(c, 0, alpha * c0 + beta * LOAD16(c, 0));
            STORE16(c, ldc, alpha * c1 + beta * LOAD16(c, ldc));
            STORE16(c, 2 * ldc, alpha * c2 + beta * LOAD16(c, 2 * ldc));
            STORE16(c, 3 * ldc, alpha * c3 + beta * LOAD16(c, 3 * ldc));
        }
        return;
    }
    int rows = min(4, M - m0), cols = min(16, N - n0);
    for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < cols; ++j) {
            float sum = 0.0f;
            for (int k = 0; k < K; ++k) sum = fma(A_AT(r, k), LOAD(b, (long)k * ldb + j), sum);
            GEMM_STORE(c, (long)r * ldc + j, r, j, sum);
        }
    }
}

// B stored transposed, [N, K]: a 4 x 4 block of C as dot products of rows of A and rows of
// B, accumulated sixteen k at a time.
__kernel void gemm_block_nt(int M, int N, int K, float alpha, float beta,
                            __global const ELEM* A, int a_off, int lda, int a_batch,
                            __global const ELEM* B, int b_off, int ldb, int b_batch,
                            __global ELEM* C, int c_off, int ldc, int c_batch, BIAS_ARGUMENTS) {
    int n0 = get_global_id(0) * 4;
    int m0 = get_global_id(1) * 4;
    int batch = get_global_id(2);
    if (n0 >= N || m0 >= M) return;
    __global const ELEM* a = A + a_off + (long)batch * a_batch + (long)m0 * lda;
    __global const ELEM* b = B + b_off + (long)batch * b_batch + (long)n0 * ldb;
    __global ELEM* c = C + c_off + (long)batch * c_batch + (long)m0 * ldc + n0;
    int rows = min(4, M - m0), cols = min(4, N - n0);
    if (rows == 4 && cols == 4) {
        float16 s00 = 0.0f, s01 = 0.0f, s02 = 0.0f, s03 = 0.0f, s10 = 0.0f, s11 = 0.0f, s12 = 0.0f, s13 = 0.0f;
        float16 s20 = 0.0f, s21 = 0.0f, s22 = 0.0f, s23 = 0.0f, s30 = 0.0f, s31 = 0.0f, s32 = 0.0f, s33 = 0.0f;
        int k = 0;
        for (; k + 16 <= K; k += 16) {
            float16 a0 = LOAD16(a, k), a1 = LOAD16(a, lda + k), a2 = LOAD16(a, 2 * lda + k), a3 = LOAD16(a, 3 * lda + k);
            float16 b0 = LOAD16(b, k), b1 = LOAD16(b, ldb + k), b2 = LOAD16(b, 2 * ldb + k), b3 = LOAD16(b, 3 * ldb + k);
            s00 = fma(a0, b0, s00); s01 = fma(a0, b1, s01); s02 = fma(a0, b2, s02); s03 = fma(a0, b3, s03);
            s10 = fma(a1, b0, s10); s11 = fma(a1, b1, s11); s12 = fma(a1, b2, s12); s13 = fma(a1, b3, s13);
            s20 = fma(a2, b0, s20); s21 = fma(a2, b1, s21); s22 = fma(a2, b2, s22); s23 = fma(a2, b3, s23);
            s30 = fma(a3, b0, s30); s31 = fma(a3, b1, s31); s32 = fma(a3, b2, s32); s33 = fma(a3, b3, s33);
        }
        float16 sums[16] = {s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33};
        for (int r = 0; r < 4; ++r) {
            for (int j = 0; j < 4; ++j) {
                float16 v = sums[r * 4 + j];
                float8 h8 = v.lo + v.hi;
                float4 h4 = h8.lo + h8.hi;
                float sum = (h4.x + h4.y) + (h4.z + h4.w);
                for (int kk = k; kk < K; ++kk) sum = fma(LOAD(a, (long)r * lda + kk), LOAD(b, (long)j * ldb + kk), sum);
                GEMM_STORE(c, (long)r * ldc + j, r, j, sum);
            }
        }
        return;
    }
    for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < cols; ++j) {
            float sum = 0.0f;
            for (int k = 0; k < K; ++k) sum = fma(LOAD(a, (long)r * lda + k), LOAD(b, (long)j * ldb + k), sum);
            GEMM_STORE(c, (long)r * ldc + j, r, j, sum);
        }
    }
}
