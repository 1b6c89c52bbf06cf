// Ember's GEMM: C[b] = alpha * op(A[b]) x op(B[b]) + beta * C[b], row-major.
//
// gemm_block computes a GEMM_ROWS x 16 block of C per work-item: for each k, one float16 row
// of a 16-column panel of B times GEMM_ROWS elements of op(A), read one scalar at a time, so
// A's element strides (a_rs, a_ks: lda and 1 for A as stored, 1 and lda for A stored
// transposed) cost nothing. Panel p of B starts at p * b_ps and its row k at k * ldb: B as
// stored is that with b_ps = 16. gemm_pack copies any B (as stored or transposed) into panels
// padded with zeros to whole panels (b_padded): row-major on GPUs (b_ps = 16: neighbouring
// work-items read neighbouring columns), panel after panel on CPU devices (ldb = 16,
// b_ps = 16 * K: a work-item streams one contiguous panel, and the rows of a wide B no longer
// collide in the cache sets). Rows past M read the last row of A and are not stored; columns
// past N of an unpadded B take a scalar path.
//
// gemm_block_nt (B stored transposed, [N, K], A as stored) computes a 4 x 4 block of dot
// products from float16 runs along K of both: for products with too few rows to repay packing.
//
// PoCL compiles these to 512-bit (or narrower) vector FMAs. A device runs them or CLBlast,
// whichever measured faster there (OpenCLBackend.gemmChoice). A and B are of the STORAGE type
// (storage.cl: float16 and bfloat16 operands are widened as they are loaded, so the product
// accumulates in float32 without float32 copies of them), and so is C: each element is the
// float32 sum rounded once. A bias (PyTorch's addmm; the host passes it only with beta == 0) is
// added before that rounding: element (r, j) of C gains bias[bias_off + r * bias_rs + j *
// bias_cs], a vector along C's rows (bias_rs = 1) or its columns (bias_cs = 1); both strides
// are 0 without one.

// Rows of C per work-item of gemm_block, as the host's gemmRows passes them: GEMM_ROWS_FLOAT32
// in float32, GEMM_ROWS_NARROW in the 16-bit types.
#if STORAGE == 0
#define GEMM_ROWS GEMM_ROWS_FLOAT32
#else
#define GEMM_ROWS GEMM_ROWS_NARROW
#endif

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

// Copies B (element (k, j) at b_off + k * b_ks + j * b_js, per batch entry b_batch apart)
// into panels of P: element (k, j) goes to (j / 16) * p_ps + k * p_ld + j % 16, with zeros
// for the columns of the last panel past N. A work-item copies a 16 x 16 tile; a tile of a
// transposed B (b_ks == 1) is read as sixteen float16 runs along k and written transposed.
__kernel void gemm_pack(int N, int K, __global const ELEM* B, int b_off, int b_ks, int b_js, int b_batch,
                        __global ELEM* P, int p_ld, int p_ps, int p_batch) {
    int j0 = get_global_id(0) * 16, k0 = get_global_id(1) * 16, batch = get_global_id(2);
    if (j0 >= N || k0 >= K) return;
    __global const ELEM* b = B + b_off + (long)batch * b_batch;
    __global ELEM* p = P + (long)batch * p_batch + (long)(j0 / 16) * p_ps;
    int kn = min(16, K - k0), jn = min(16, N - j0);
    if (b_ks == 1 && kn == 16 && jn == 16) {
        float t[16][16];
        for (int jj = 0; jj < 16; ++jj) vstore16(LOAD16(b, k0 + (long)(j0 + jj) * b_js), 0, t[jj]);
        for (int kk = 0; kk < 16; ++kk) {
            STORE16(p, (long)(k0 + kk) * p_ld, ((float16)(t[0][kk], t[1][kk], t[2][kk], t[3][kk], t[4][kk], t[5][kk], t[6][kk], t[7][kk],
                                                          t[8][kk], t[9][kk], t[10][kk], t[11][kk], t[12][kk], t[13][kk], t[14][kk], t[15][kk])));
        }
        return;
    }
    if (b_js == 1 && jn == 16) {
        for (int kk = 0; kk < kn; ++kk) STORE16(p, (long)(k0 + kk) * p_ld, LOAD16(b, (long)(k0 + kk) * b_ks + j0));
        return;
    }
    for (int kk = 0; kk < kn; ++kk) {
        for (int jj = 0; jj < 16; ++jj) {
            STORE(p, (long)(k0 + kk) * p_ld + jj, jj < jn ? LOAD(b, (long)(k0 + kk) * b_ks + (long)(j0 + jj) * b_js) : 0.0f);
        }
    }
}

__kernel void gemm_block(int M, int N, int K, float alpha, float beta,
                         __global const ELEM* A, int a_off, int a_rs, int a_ks, int a_batch,
                         __global const ELEM* B, int b_off, int ldb, int b_ps, int b_padded, int b_batch,
                         __global ELEM* C, int c_off, int ldc, int c_batch, BIAS_ARGUMENTS) {
    int n0 = get_global_id(0) * 16;
    int m0 = get_global_id(1) * GEMM_ROWS;
    int batch = get_global_id(2);
    if (n0 >= N || m0 >= M) return;
    int rows = min(GEMM_ROWS, M - m0), cols = min(16, N - n0);
    __global const ELEM* a = A + a_off + (long)batch * a_batch + (long)m0 * a_rs;
    __global const ELEM* b = B + b_off + (long)batch * b_batch + (long)(n0 / 16) * b_ps;
    __global ELEM* c = C + c_off + (long)batch * c_batch + (long)m0 * ldc + n0;
    if (cols == 16 || b_padded) {
        float16 sums[GEMM_ROWS];
        #pragma unroll
        for (int r = 0; r < GEMM_ROWS; ++r) sums[r] = 0.0f;
        for (int k = 0; k < K; ++k) {
            float16 bk = LOAD16(b, (long)k * ldb);
            #pragma unroll
            for (int r = 0; r < GEMM_ROWS; ++r) sums[r] = fma((float16)(A_AT(min(r, rows - 1), k)), bk, sums[r]);
        }
        // The stores go row by row in a loop left rolled (unrolled for every row and case they
        // doubled PoCL's compilation of this kernel), through a copy of the sums, so that the
        // loop's dynamic index keeps only the copy, not the sums of the k loop, out of registers.
        float16 results[GEMM_ROWS];
        #pragma unroll
        for (int r = 0; r < GEMM_ROWS; ++r) results[r] = sums[r];
        #pragma unroll 1
        for (int r = 0; r < rows; ++r) {
            __global ELEM* row = c + (long)r * ldc;
            if (cols < 16) {
                float partial[16];
                vstore16(results[r], 0, partial);
                for (int j = 0; j < cols; ++j) GEMM_STORE(row, j, r, j, partial[j]);
            } else if (bias_rs != 0 || bias_cs != 0) {
                STORE16(row, 0, alpha * results[r] + BIAS16(r));
            } else if (beta == 0.0f) {
                STORE16(row, 0, alpha * results[r]);
            } else {
                STORE16(row, 0, alpha * results[r] + beta * LOAD16(row, 0));
            }
        }
        return;
    }
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
                float sum = sum16(sums[r * 4 + j]);
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
