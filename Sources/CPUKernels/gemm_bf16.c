// GEMM on 16-bit float operands (bfloat16 or IEEE half) with float32 accumulation, blocked the
// usual way: B is packed a KC x NC block at a time into panels NR columns wide, A an MC x KC
// block at a time into panels MR rows high, and a register-tiled micro-kernel multiplies one A
// panel by one B panel into an MR x NR tile of C. Transposed operands only change how the
// packing reads them.
//
// With the AVX-512 BF16 instructions the panels stay bfloat16 with k in interleaved pairs, the
// layout `vdpbf16ps` wants: each 32-bit lane of a B vector holds (B[k][j], B[k+1][j]), and the
// matching pair of A row i is broadcast, so one instruction does two multiply-adds per lane.
// Otherwise (and for float16) the packed panels are converted to float32 and an FMA (or
// portable C) micro-kernel runs on them.
//
// Large products are split across threads by rows of C (or by columns when there are few
// rows); each thread packs its own blocks, so they share nothing but the inputs.
#define _GNU_SOURCE
#include "cpu_kernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/// One operand as the packing sees it: element (w, kk) is at p[w * sw + kk * sk], where w is
/// A's row or B's column and kk the index along k.
typedef struct {
    const uint16_t *p;
    long sw, sk;
} operand;

/// Multiplies a packed A panel by a packed B panel over `steps` k-steps (pairs of k for the
/// bfloat16 layout) and writes the top-left rows x cols of the tile: C = alpha * AB + beta * C,
/// C not read when beta is 0.
typedef void (*tile_kernel)(long steps, const void *a, const void *b, float *c, long ldc, int rows, int cols,
                            float alpha, float beta);

typedef void (*to_f32_fn)(ember_isa isa, const uint16_t *x, float *y, long n);

/// Packs a block of an operand into panels (see `pack_block`); returns one panel's elements.
typedef long (*pack_fn)(operand x, long w0, long count, int width, long k0, long depth, int pairs, uint16_t *dst);

/// Blocking and kernel of one code path.
typedef struct {
    int mr, nr;        // register tile
    int pairs;         // panels stay bfloat16 (else they are converted to float32, one k per row)
    int kpad;          // packed depths are padded to a multiple of this
    long kc, mc, nc;   // cache blocks; kc a multiple of kpad, mc of mr, nc of nr
    tile_kernel kernel;        // the one tile kernel, when `tiles` is NULL
    const tile_kernel *tiles;  // else kernels by [(columns > 16) * mr + rows - 1]
    pack_fn pack;      // packs B, and A unless `pack_a` is set
    pack_fn pack_a;
    void (*begin)(void), (*end)(void);  // per-thread set-up and tear-down around the kernels, if any
    to_f32_fn to_f32;  // converts packed float paths' panels
    ember_isa isa;
} gemm_plan;

// MARK: Packing

static inline int min_int(long a, long b) { return (int)(a < b ? a : b); }

/// Packs the `count` x `depth` block of `x` starting at (w0, k0) as consecutive panels `width`
/// wide, padding the last panel with zeros to `width` and, in the pair layout, the depth to an
/// even number; returns the 16-bit elements one panel takes. Pair layout: for each k-pair p, a
/// panel holds `width` 32-bit words (x(w, k0 + 2p) low, x(w, k0 + 2p + 1) high); plain layout:
/// for each k, `width` values. One of x's strides is 1 (rows of A or B, or of their
/// transposes): reading along w, a row (pair of rows) is spread across all panels in turn;
/// reading along k, each panel is filled in order from `width` rows read side by side.
static long pack_block(operand x, long w0, long count, int width, long k0, long depth, int pairs, uint16_t *dst) {
    long steps = pairs ? (depth + 1) / 2 : depth, stepSize = pairs ? 2L * width : width;
    long panel = steps * stepSize, panels = (count + width - 1) / width;
    const uint16_t *base = x.p + w0 * x.sw + k0 * x.sk;
    if (x.sw == 1) {
        for (long s = 0; s < steps; s++) {
            const uint16_t *even = base + (pairs ? 2 * s : s) * x.sk, *odd = even + x.sk;
            int full = pairs && 2 * s + 1 < depth;
            for (long q = 0; q < panels; q++) {
                int valid = min_int(width, count - q * width);
                const uint16_t *e = even + q * width, *o = odd + q * width;
                uint16_t *out16 = dst + q * panel + s * stepSize;
                if (!pairs) {
                    memcpy(out16, e, (size_t)valid * 2);
                    for (int w = valid; w < width; w++) out16[w] = 0;
                    continue;
                }
                uint32_t *out = (uint32_t *)(void *)out16;
                if (full) {
                    for (int w = 0; w < valid; w++) out[w] = (uint32_t)e[w] | (uint32_t)o[w] << 16;
                } else {
                    for (int w = 0; w < valid; w++) out[w] = e[w];
                }
                for (int w = valid; w < width; w++) out[w] = 0;
            }
        }
        return panel;
    }
    for (long q = 0; q < panels; q++) {
        int valid = min_int(width, count - q * width);
        const uint16_t *rows = base + q * width * x.sw;
        uint16_t *out16 = dst + q * panel;
        for (long s = 0; s < steps; s++, out16 += stepSize) {
            if (!pairs) {
                for (int w = 0; w < valid; w++) out16[w] = rows[w * x.sw + s];
                for (int w = valid; w < width; w++) out16[w] = 0;
                continue;
            }
            uint32_t *out = (uint32_t *)(void *)out16;
            const uint16_t *pair = rows + 2 * s;
            if (2 * s + 1 < depth) {
                for (int w = 0; w < valid; w++) memcpy(out + w, pair + w * x.sw, 4);
            } else {
                for (int w = 0; w < valid; w++) out[w] = pair[w * x.sw];
            }
            for (int w = valid; w < width; w++) out[w] = 0;
        }
    }
    return panel;
}

// MARK: Micro-kernels

/// Portable C: 4 x 8 tile on float32 panels.
#define SCALAR_MR 4
#define SCALAR_NR 8
static void kernel_f32_scalar(long steps, const void *ap, const void *bp, float *c, long ldc, int rows, int cols,
                              float alpha, float beta) {
    const float *a = ap, *b = bp;
    float acc[SCALAR_MR][SCALAR_NR] = {{0}};
    for (long s = 0; s < steps; s++, a += SCALAR_MR, b += SCALAR_NR)
        for (int i = 0; i < SCALAR_MR; i++)
            for (int j = 0; j < SCALAR_NR; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float *out = c + i * ldc + j;
            *out = beta == 0 ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *out;
        }
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>

/// AVX2 + FMA: 6 x 16 tile (12 accumulators of 8 floats) on float32 panels.
#define AVX2_MR 6
#define AVX2_NR 16
__attribute__((target("avx2,fma"))) static void kernel_f32_avx2(long steps, const void *ap, const void *bp, float *c,
                                                                long ldc, int rows, int cols, float alpha, float beta) {
    const float *a = ap, *b = bp;
    __m256 acc[AVX2_MR][2];
    for (int i = 0; i < AVX2_MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (long s = 0; s < steps; s++, a += AVX2_MR, b += AVX2_NR) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        for (int i = 0; i < AVX2_MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (rows == AVX2_MR && cols == AVX2_NR) {
        for (int i = 0; i < AVX2_MR; i++)
            for (int v = 0; v < 2; v++) {
                float *out = c + i * ldc + 8 * v;
                __m256 r = _mm256_mul_ps(acc[i][v], va);
                if (beta != 0) r = _mm256_fmadd_ps(_mm256_loadu_ps(out), vb, r);
                _mm256_storeu_ps(out, r);
            }
        return;
    }
    float tile[AVX2_MR][AVX2_NR];
    for (int i = 0; i < AVX2_MR; i++)
        for (int v = 0; v < 2; v++) _mm256_storeu_ps(tile[i] + 8 * v, acc[i][v]);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float *out = c + i * ldc + j;
            *out = beta == 0 ? alpha * tile[i][j] : alpha * tile[i][j] + beta * *out;
        }
}

/// Writes an AVX-512 tile of `mr` rows x `nv` vectors of 16 floats.
__attribute__((target("avx512f"), always_inline)) static inline void store_tile_avx512(
    const __m512 *acc, int mr, int nv, float *c, long ldc, int rows, int cols, float alpha, float beta) {
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __mmask16 mask[4];
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) {
        int live = cols - 16 * v;
        mask[v] = live >= 16 ? (__mmask16)0xFFFF : live <= 0 ? 0 : (__mmask16)((1u << live) - 1);
    }
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        if (i >= rows) continue;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            float *out = c + i * ldc + 16 * v;
            __m512 r = _mm512_mul_ps(acc[i * nv + v], va);
            if (beta != 0) r = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask[v], out), vb, r);
            _mm512_mask_storeu_ps(out, mask[v], r);
        }
    }
}

/// The AVX-512 tiles: 14 rows x 2 vectors of 16 columns (28 accumulators), on float32 panels
/// (one FMA per row and vector per k) or bfloat16 pair panels (one `vdpbf16ps` per k-pair).
/// Each is compiled for every live row count and for 1 or 2 vectors, so a tile at the edge of C
/// (or a product with few rows) computes only what it keeps; the panels keep their full width.
#define AVX512_MR 14
#define AVX512_NV 2

__attribute__((target("avx512f"), always_inline)) static inline void tile_f32_avx512(
    const int mr, const int nv, long steps, const float *a, const float *b, float *c, long ldc, int rows, int cols,
    float alpha, float beta) {
    __m512 acc[AVX512_MR * AVX512_NV];
#pragma GCC unroll 32
    for (int i = 0; i < mr * nv; i++) acc[i] = _mm512_setzero_ps();
    for (long s = 0; s < steps; s++, a += AVX512_MR, b += 16 * AVX512_NV) {
        __m512 bv[AVX512_NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[i * nv + v] = _mm512_fmadd_ps(ai, bv[v], acc[i * nv + v]);
        }
    }
    store_tile_avx512(acc, mr, nv, c, ldc, rows, cols, alpha, beta);
}

__attribute__((target("avx512f,avx512bf16"), always_inline)) static inline void tile_bf16(
    const int mr, const int nv, long steps, const uint32_t *a, const uint16_t *b, float *c, long ldc, int rows,
    int cols, float alpha, float beta) {
    __m512 acc[AVX512_MR * AVX512_NV];
#pragma GCC unroll 32
    for (int i = 0; i < mr * nv; i++) acc[i] = _mm512_setzero_ps();
    for (long s = 0; s < steps; s++, a += AVX512_MR, b += 32 * AVX512_NV) {
        __m512bh bv[AVX512_NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) bv[v] = (__m512bh)_mm512_loadu_si512((const void *)(b + 32 * v));
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[i * nv + v] = _mm512_dpbf16_ps(acc[i * nv + v], ai, bv[v]);
        }
    }
    store_tile_avx512(acc, mr, nv, c, ldc, rows, cols, alpha, beta);
}

#define AVX512_TILES(R)                                                                                            \
    __attribute__((target("avx512f"))) static void f32_##R##x1(long steps, const void *a, const void *b, float *c,  \
                                                               long ldc, int rows, int cols, float alpha,          \
                                                               float beta) {                                       \
        tile_f32_avx512(R, 1, steps, a, b, c, ldc, rows, cols, alpha, beta);                                        \
    }                                                                                                              \
    __attribute__((target("avx512f"))) static void f32_##R##x2(long steps, const void *a, const void *b, float *c,  \
                                                               long ldc, int rows, int cols, float alpha,          \
                                                               float beta) {                                       \
        tile_f32_avx512(R, 2, steps, a, b, c, ldc, rows, cols, alpha, beta);                                        \
    }                                                                                                              \
    __attribute__((target("avx512f,avx512bf16"))) static void bf16_##R##x1(long steps, const void *a, const void *b, \
                                                                          float *c, long ldc, int rows, int cols,  \
                                                                          float alpha, float beta) {               \
        tile_bf16(R, 1, steps, a, b, c, ldc, rows, cols, alpha, beta);                                              \
    }                                                                                                              \
    __attribute__((target("avx512f,avx512bf16"))) static void bf16_##R##x2(long steps, const void *a, const void *b, \
                                                                          float *c, long ldc, int rows, int cols,  \
                                                                          float alpha, float beta) {               \
        tile_bf16(R, 2, steps, a, b, c, ldc, rows, cols, alpha, beta);                                              \
    }
AVX512_TILES(1)
AVX512_TILES(2)
AVX512_TILES(3)
AVX512_TILES(4)
AVX512_TILES(5)
AVX512_TILES(6)
AVX512_TILES(7)
AVX512_TILES(8)
AVX512_TILES(9)
AVX512_TILES(10)
AVX512_TILES(11)
AVX512_TILES(12)
AVX512_TILES(13)
AVX512_TILES(14)

/// Tiles by (vectors - 1) * 14 + rows - 1.
static const tile_kernel f32_avx512_tiles[2 * AVX512_MR] = {
    f32_1x1, f32_2x1, f32_3x1, f32_4x1, f32_5x1, f32_6x1, f32_7x1, f32_8x1, f32_9x1, f32_10x1, f32_11x1, f32_12x1,
    f32_13x1, f32_14x1, f32_1x2, f32_2x2, f32_3x2, f32_4x2, f32_5x2, f32_6x2, f32_7x2, f32_8x2, f32_9x2, f32_10x2,
    f32_11x2, f32_12x2, f32_13x2, f32_14x2,
};
static const tile_kernel bf16_tiles[2 * AVX512_MR] = {
    bf16_1x1, bf16_2x1, bf16_3x1, bf16_4x1, bf16_5x1, bf16_6x1, bf16_7x1, bf16_8x1, bf16_9x1, bf16_10x1, bf16_11x1,
    bf16_12x1, bf16_13x1, bf16_14x1, bf16_1x2, bf16_2x2, bf16_3x2, bf16_4x2, bf16_5x2, bf16_6x2, bf16_7x2, bf16_8x2,
    bf16_9x2, bf16_10x2, bf16_11x2, bf16_12x2, bf16_13x2, bf16_14x2,
};

/// Transposes a 16 x 16 block of 32-bit words in place: r[i] lane j becomes r[j] lane i.
__attribute__((target("avx512f"), always_inline)) static inline void transpose16(__m512i r[16]) {
    __m512i a[16], b[16];
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {  // pairs of rows, word by word within each 128-bit lane
        a[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        a[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {  // b[i + c], lane L: column 4L + c of rows i .. i + 3
        b[i] = _mm512_unpacklo_epi64(a[i], a[i + 2]);
        b[i + 1] = _mm512_unpackhi_epi64(a[i], a[i + 2]);
        b[i + 2] = _mm512_unpacklo_epi64(a[i + 1], a[i + 3]);
        b[i + 3] = _mm512_unpackhi_epi64(a[i + 1], a[i + 3]);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {  // gather lane L of b[c], b[4 + c], b[8 + c], b[12 + c]
        __m512i even0 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0x88), odd0 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0xDD);
        __m512i even1 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0x88), odd1 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0xDD);
        r[c] = _mm512_shuffle_i32x4(even0, even1, 0x88);
        r[8 + c] = _mm512_shuffle_i32x4(even0, even1, 0xDD);
        r[4 + c] = _mm512_shuffle_i32x4(odd0, odd1, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(odd0, odd1, 0xDD);
    }
}

static inline __mmask16 low_lanes(long count) {
    return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? 0 : (__mmask16)((1u << count) - 1);
}

/// `pack_block` for the pair layout with AVX-512: reading along w, two rows are widened and
/// merged 16 words at a time; reading along k, 16 rows x 16 pairs are loaded and transposed.
__attribute__((target("avx512f,avx512bw,avx512vl"))) static long pack_pairs_avx512(operand x, long w0, long count,
                                                                                  int width, long k0, long depth,
                                                                                  int pairs, uint16_t *dst) {
    (void)pairs;
    long steps = (depth + 1) / 2, whole = depth / 2, panel = 2 * steps * width;
    long panels = (count + width - 1) / width;
    const uint16_t *base = x.p + w0 * x.sw + k0 * x.sk;
    if (x.sw == 1) {
        for (long s = 0; s < steps; s++) {
            const uint16_t *even = base + 2 * s * x.sk, *odd = even + x.sk;
            int full = s < whole;
            for (long q = 0; q < panels; q++) {
                uint32_t *out = (uint32_t *)(void *)(dst + q * panel) + s * width;
                for (int w = 0; w < width; w += 16) {
                    __mmask16 load = low_lanes(count - q * width - w), store = low_lanes(width - w);
                    __m512i low = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(load, even + q * width + w));
                    __m512i high = full ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(load, odd + q * width + w))
                                        : _mm512_setzero_si512();
                    _mm512_mask_storeu_epi32(out + w, store, _mm512_or_si512(low, _mm512_slli_epi32(high, 16)));
                }
            }
        }
        return panel;
    }
    for (long q = 0; q < panels; q++) {
        uint32_t *out = (uint32_t *)(void *)(dst + q * panel);
        for (int g = 0; g < width; g += 16) {
            long rows = count - q * width - g;
            rows = rows > 16 ? 16 : rows < 0 ? 0 : rows;
            __mmask16 store = low_lanes(width - g);
            const uint16_t *first = base + (q * width + g) * x.sw;
            for (long s = 0; s < whole; s += 16) {
                __mmask16 load = low_lanes(whole - s);
                __m512i r[16];
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++)
                    r[i] = i < rows ? _mm512_maskz_loadu_epi32(load, first + i * x.sw + 2 * s) : _mm512_setzero_si512();
                transpose16(r);
                long live = whole - s < 16 ? whole - s : 16;
                for (int j = 0; j < live; j++) _mm512_mask_storeu_epi32(out + (s + j) * width + g, store, r[j]);
            }
            if (steps > whole) {  // odd depth: the last pair is (x(w, depth - 1), 0)
                uint32_t words[16];
                for (int i = 0; i < 16; i++) words[i] = i < rows ? first[i * x.sw + depth - 1] : 0;
                _mm512_mask_storeu_epi32(out + whole * width + g, store, _mm512_loadu_si512((const void *)words));
            }
        }
    }
    return panel;
}

// MARK: AMX

/// AMX (Sapphire Rapids and later): `tdpbf16ps` multiplies a 16 x 32 bfloat16 tile of A (rows
/// of 32 k) by a 16 x 16 tile of B in the pair layout (16 k-pairs of 16 columns) into a 16 x 16
/// float32 tile. The micro-kernel keeps a 32 x 32 block of C in four accumulator tiles (tmm0-3)
/// and loads two A tiles (tmm4-5) and two B tiles (tmm6-7) per 32 k. B is packed by
/// `pack_pairs_avx512` 32 columns wide (a B tile is then 16 rows of 64 bytes, 128 bytes apart),
/// A by `pack_rows_amx` into 32-row panels of 1 KiB tiles; both are zero-padded to whole tiles,
/// so edges are exact. Each thread loads the tile configuration itself (`amx_begin`, from
/// `gemm_serial`); Linux hands out tile state only after `arch_prctl(ARCH_REQ_XCOMP_PERM)`.
#define AMX_MR 32
#define AMX_NR 32
#define AMX_KC 1024
#define AMX_MC 128
#define AMX_NC 1024

static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static int amx_ok = 0;

static void amx_request(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return;
    if (!(edx & (1u << 22)) || !(edx & (1u << 24))) return;  // AMX-BF16, AMX-TILE
    // ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA: fails where the kernel does not manage tile state.
    amx_ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

/// Whether this CPU has AMX-BF16 and the process may use tiles (asked once per process).
static int amx_permitted(void) {
    pthread_once(&amx_once, amx_request);
    return amx_ok;
}

/// The 64-byte LDTILECFG operand, palette 1: eight tiles of 16 rows x 64 bytes.
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

// A constant rather than a local: gcc 12 drops the zeroing of a local configuration before
// LDTILECFG (it does not see the instruction read it), and garbage there faults.
static const amx_config amx_tiles = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

__attribute__((target("amx-tile"))) static void amx_begin(void) { _tile_loadconfig(&amx_tiles); }

__attribute__((target("amx-tile"))) static void amx_end(void) { _tile_release(); }

/// `pack_pairs_avx512` a panel at a time, each padded with zero k-pairs to a multiple of 16 (a
/// whole B tile).
__attribute__((target("avx512f,avx512bw,avx512vl"))) static long pack_pairs_amx(operand x, long w0, long count,
                                                                               int width, long k0, long depth,
                                                                               int pairs, uint16_t *dst) {
    long steps = (depth + 1) / 2, padded = (steps + 15) / 16 * 16, panel = 2 * padded * width;
    for (long q = 0; q * width < count; q++) {
        uint16_t *out = dst + q * panel;
        long valid = count - q * width < width ? count - q * width : width;
        pack_pairs_avx512(x, w0 + q * width, valid, width, k0, depth, pairs, out);
        memset(out + 2 * steps * width, 0, (size_t)(padded - steps) * (size_t)width * 4);
    }
    return panel;
}

/// Packs A for the AMX kernel: panels of `width` rows (a multiple of 16); for each 32 k, each
/// row's 32 values (64 bytes) in turn, zero past `count` rows and `depth`. Reading along k a row
/// is copied 32 values at a time; reading along w (A transposed), 16 rows x 16 k-pairs are
/// merged into pairs as in `pack_pairs_avx512` and transposed.
__attribute__((target("avx512f,avx512bw,avx512vl"))) static long pack_rows_amx(operand x, long w0, long count,
                                                                              int width, long k0, long depth,
                                                                              int pairs, uint16_t *dst) {
    (void)pairs;
    long chunks = (depth + 31) / 32, panel = chunks * 32 * width;
    const uint16_t *base = x.p + w0 * x.sw + k0 * x.sk;
    for (long q = 0; q * width < count; q++) {
        uint16_t *out = dst + q * panel;
        long rows = count - q * width;
        for (long t = 0; t < chunks; t++) {
            long live = depth - 32 * t;
            uint16_t *tile = out + t * 32 * width;
            if (x.sk == 1) {
                __mmask32 load = live >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << live) - 1);
                for (int w = 0; w < width; w++) {
                    __m512i r = w < rows ? _mm512_maskz_loadu_epi16(load, base + (q * width + w) * x.sw + 32 * t)
                                         : _mm512_setzero_si512();
                    _mm512_storeu_si512((void *)(tile + 32 * w), r);
                }
                continue;
            }
            for (int g = 0; g < width; g += 16) {
                __mmask16 load = low_lanes(rows - g);
                const uint16_t *first = base + q * width + g + 32 * t * x.sk;
                __m512i r[16];
#pragma GCC unroll 16
                for (int j = 0; j < 16; j++) {
                    __m512i low = 2 * j < live ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(load, first + 2 * j * x.sk))
                                               : _mm512_setzero_si512();
                    __m512i high = 2 * j + 1 < live
                                       ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(load, first + (2 * j + 1) * x.sk))
                                       : _mm512_setzero_si512();
                    r[j] = _mm512_or_si512(low, _mm512_slli_epi32(high, 16));
                }
                transpose16(r);
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++) _mm512_storeu_si512((void *)(tile + 32 * (g + i)), r[i]);
            }
        }
    }
    return panel;
}

/// The 32 x 32 AMX tile: `steps` k-pairs (rounded up to whole tiles, which the packing padded),
/// then C = alpha * acc + beta * C on the top-left rows x cols with AVX-512.
__attribute__((target("amx-tile,amx-bf16,avx512f"))) static void kernel_amx(long steps, const void *ap, const void *bp,
                                                                           float *c, long ldc, int rows, int cols,
                                                                           float alpha, float beta) {
    const uint16_t *a = ap, *b = bp;
    long chunks = (steps + 15) / 16;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (long t = 0; t < chunks; t++, a += 32 * AMX_MR, b += 32 * AMX_NR) {
        _tile_loadd(4, a, 64);
        _tile_loadd(5, a + 16 * 32, 64);
        _tile_loadd(6, b, 4 * AMX_NR);
        _tile_loadd(7, b + 32, 4 * AMX_NR);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    float acc[AMX_MR][AMX_NR] __attribute__((aligned(64)));
    _tile_stored(0, &acc[0][0], 4 * AMX_NR);
    _tile_stored(1, &acc[0][16], 4 * AMX_NR);
    _tile_stored(2, &acc[16][0], 4 * AMX_NR);
    _tile_stored(3, &acc[16][16], 4 * AMX_NR);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __mmask16 mask[2] = {low_lanes(cols), low_lanes(cols - 16)};
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < 2; v++) {
            if (!mask[v]) continue;
            float *out = c + i * ldc + 16 * v;
            __m512 r = _mm512_mul_ps(_mm512_load_ps(&acc[i][16 * v]), va);
            if (beta != 0) r = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask[v], out), vb, r);
            _mm512_mask_storeu_ps(out, mask[v], r);
        }
}
#endif

/// The path for `isa`; float16 operands always take a float32 path.
static gemm_plan plan_for(ember_isa isa, int half) {
    gemm_plan p = {.mr = SCALAR_MR, .nr = SCALAR_NR, .kpad = 2, .kc = 256, .mc = 128, .nc = 1024,
                   .kernel = kernel_f32_scalar, .pack = pack_block, .isa = EMBER_ISA_SCALAR};
#if defined(__x86_64__)
    if (isa == EMBER_ISA_AMX_BF16 && !amx_permitted()) isa = EMBER_ISA_AVX512_BF16;
    if (isa == EMBER_ISA_AMX_BF16 && !half) {
        p = (gemm_plan){.mr = AMX_MR, .nr = AMX_NR, .pairs = 1, .kpad = 32, .kc = AMX_KC, .mc = AMX_MC, .nc = AMX_NC,
                        .kernel = kernel_amx, .pack = pack_pairs_amx, .pack_a = pack_rows_amx, .begin = amx_begin,
                        .end = amx_end, .isa = isa};
    } else if (isa >= EMBER_ISA_AVX512_BF16 && !half) {
        p = (gemm_plan){.mr = AVX512_MR, .nr = 16 * AVX512_NV, .pairs = 1, .kpad = 2, .kc = 1024, .mc = 14 * 12,
                        .nc = 1024, .tiles = bf16_tiles, .pack = pack_pairs_avx512, .isa = EMBER_ISA_AVX512_BF16};
    } else if (isa >= EMBER_ISA_AVX512) {
        p = (gemm_plan){.mr = AVX512_MR, .nr = 16 * AVX512_NV, .kpad = 2, .kc = 512, .mc = 14 * 6, .nc = 1024,
                        .tiles = f32_avx512_tiles, .pack = pack_block, .isa = EMBER_ISA_AVX512};
    } else if (isa == EMBER_ISA_AVX2) {
        p = (gemm_plan){.mr = AVX2_MR, .nr = AVX2_NR, .kpad = 2, .kc = 256, .mc = 6 * 24, .nc = 1024,
                        .kernel = kernel_f32_avx2, .pack = pack_block, .isa = EMBER_ISA_AVX2};
    }
#else
    (void)isa;
#endif
    p.to_f32 = half ? ember_f16_to_f32_isa : ember_bf16_to_f32_isa;
    return p;
}

// MARK: Driver

/// Packing buffers of one thread: 16-bit panels, and their float32 conversions on the float paths.
typedef struct {
    uint16_t *a16, *b16;
    float *a32, *b32;
} buffers;

static void *aligned_or_die(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        fprintf(stderr, "ember_gemm: cannot allocate %zu bytes of packing buffer\n", bytes);
        abort();
    }
    return p;
}

/// Buffers for the blocks of an m x n x k product (no larger than the plan's blocks).
static buffers buffers_alloc(const gemm_plan *p, long m, long n, long k) {
    long rows = m < p->mc ? (m + p->mr - 1) / p->mr * p->mr : p->mc;
    long cols = n < p->nc ? (n + p->nr - 1) / p->nr * p->nr : p->nc;
    long depth = k < p->kc ? (k + p->kpad - 1) / p->kpad * p->kpad : p->kc;
    size_t a = (size_t)rows * (size_t)depth, b = (size_t)cols * (size_t)depth;
    buffers s = {aligned_or_die(a * 2), aligned_or_die(b * 2), NULL, NULL};
    if (!p->pairs) {
        s.a32 = aligned_or_die(a * 4);
        s.b32 = aligned_or_die(b * 4);
    }
    return s;
}

static void buffers_free(buffers s) {
    free(s.a16);
    free(s.b16);
    free(s.a32);
    free(s.b32);
}

/// C (m x n) = alpha * A B + beta * C on the calling thread, with A element (i, kk) at
/// a.p[i * a.sw + kk * a.sk] and B element (kk, j) at b.p[j * b.sw + kk * b.sk].
static void gemm_serial(const gemm_plan *p, long m, long n, long k, float alpha, operand a, operand b, float beta,
                        float *c, long ldc) {
    buffers s = buffers_alloc(p, m, n, k);
    pack_fn packA = p->pack_a ? p->pack_a : p->pack;
    if (p->begin) p->begin();
    for (long jc = 0; jc < n; jc += p->nc) {
        long nb = n - jc < p->nc ? n - jc : p->nc;
        for (long pc = 0; pc < k; pc += p->kc) {
            long kb = k - pc < p->kc ? k - pc : p->kc;
            long steps = p->pairs ? (kb + 1) / 2 : kb;
            float blockBeta = pc == 0 ? beta : 1;
            long bPanel = p->pack(b, jc, nb, p->nr, pc, kb, p->pairs, s.b16);
            const void *bPacked = s.b16;
            if (!p->pairs) {
                p->to_f32(p->isa, s.b16, s.b32, (nb + p->nr - 1) / p->nr * bPanel);
                bPacked = s.b32;
            }
            size_t elementBytes = p->pairs ? 2 : 4;
            for (long ic = 0; ic < m; ic += p->mc) {
                long mb = m - ic < p->mc ? m - ic : p->mc;
                long aPanel = packA(a, ic, mb, p->mr, pc, kb, p->pairs, s.a16);
                const void *aPacked = s.a16;
                if (!p->pairs) {
                    p->to_f32(p->isa, s.a16, s.a32, (mb + p->mr - 1) / p->mr * aPanel);
                    aPacked = s.a32;
                }
                for (long jr = 0; jr < nb; jr += p->nr) {
                    const char *bp = (const char *)bPacked + (size_t)(jr / p->nr) * (size_t)bPanel * elementBytes;
                    int cols = min_int(p->nr, nb - jr);
                    for (long ir = 0; ir < mb; ir += p->mr) {
                        const char *ap = (const char *)aPacked + (size_t)(ir / p->mr) * (size_t)aPanel * elementBytes;
                        int rows = min_int(p->mr, mb - ir);
                        tile_kernel kernel = p->tiles ? p->tiles[(cols > 16) * p->mr + rows - 1] : p->kernel;
                        kernel(steps, ap, bp, c + (ic + ir) * ldc + jc + jr, ldc, rows, cols, alpha, blockBeta);
                    }
                }
            }
        }
    }
    if (p->end) p->end();
    buffers_free(s);
}

// MARK: Threads

static atomic_int configured_threads = 0;

void ember_gemm_set_threads(int threads) { atomic_store(&configured_threads, threads > 0 ? threads : 0); }

int ember_gemm_threads(void) {
    int t = atomic_load(&configured_threads);
    if (t > 0) return t;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)online : 1;
}

/// Below this many multiply-adds a product runs on the calling thread: starting a thread costs
/// tens of microseconds, a product this size about as much.
#define THREAD_MIN_WORK (1L << 22)

typedef struct {
    const gemm_plan *plan;
    long m, n, k;
    float alpha, beta;
    operand a, b;
    float *c;          // C of float32, or NULL and
    uint16_t *c16;     // C of 16-bit elements: IEEE half when `half`, else bfloat16
    int half;
    long ldc;
} gemm_job;

static void scale_c(long m, long n, float beta, float *c, long ldc) {
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
}

/// `gemm_serial` into C of 16-bit elements: each block of up to nc columns is accumulated over
/// all of k in a float32 panel (C widened into it first when beta is not 0) and rounded into
/// C once, so C gets the bits of the float32 product rounded.
static void gemm_serial_narrow(const gemm_plan *p, long m, long n, long k, float alpha, operand a, operand b, float beta,
                               uint16_t *c, long ldc, int half) {
    long width = n < p->nc ? n : p->nc;
    float *panel = aligned_or_die((size_t)m * (size_t)width * 4);
    for (long jc = 0; jc < n; jc += width) {
        long nb = n - jc < width ? n - jc : width;
        operand block = b;
        block.p += jc * b.sw;
        for (long i = 0; i < m && beta != 0; i++) (half ? ember_f16_to_f32 : ember_bf16_to_f32)(c + i * ldc + jc, panel + i * nb, nb);
        if (k <= 0 || alpha == 0) scale_c(m, nb, beta, panel, nb);
        else gemm_serial(p, m, nb, k, alpha, a, block, beta, panel, nb);
        for (long i = 0; i < m; i++) (half ? ember_f32_to_f16 : ember_f32_to_bf16)(panel + i * nb, c + i * ldc + jc, nb);
    }
    free(panel);
}

static void *run_job(void *arg) {
    gemm_job *j = arg;
    if (j->c16) gemm_serial_narrow(j->plan, j->m, j->n, j->k, j->alpha, j->a, j->b, j->beta, j->c16, j->ldc, j->half);
    else gemm_serial(j->plan, j->m, j->n, j->k, j->alpha, j->a, j->b, j->beta, j->c, j->ldc);
    return NULL;
}

/// How C is split between threads: `parts` ranges of rows (or of columns), each whole units of
/// `unit` rows (columns): one row (16 columns) where the plan has a tile for every row count (one
/// or two vectors), else its full tile, so no part computes padding that one thread would not.
typedef struct {
    int byRows;
    long unit, units, extent, parts;
} gemm_split;

/// The split of an m x n x k product over at most `threads` threads (one part when it is too
/// small to share).
static gemm_split split_for(const gemm_plan *p, int threads, long m, long n, long k) {
    if (threads > 64) threads = 64;
    long rowTiles = (m + p->mr - 1) / p->mr, colTiles = (n + p->nr - 1) / p->nr;
    gemm_split s;
    s.byRows = rowTiles >= 4L * threads || rowTiles >= colTiles;
    s.unit = s.byRows ? (p->tiles ? 1 : p->mr) : (p->tiles ? 16 : p->nr);
    s.extent = s.byRows ? m : n;
    s.units = (s.extent + s.unit - 1) / s.unit;
    s.parts = threads < (s.byRows ? rowTiles : colTiles) ? threads : (s.byRows ? rowTiles : colTiles);
    if (s.parts < 1 || m * n * k < THREAD_MIN_WORK) s.parts = 1;
    return s;
}

/// The job of part `t` of split `s` of the product `whole`.
static gemm_job part_job(gemm_split s, long t, gemm_job whole) {
    long first = s.units * t / s.parts * s.unit, last = s.units * (t + 1) / s.parts * s.unit;
    if (last > s.extent) last = s.extent;
    gemm_job j = whole;
    long shift = s.byRows ? first * whole.ldc : first;
    if (s.byRows) {
        j.m = last - first;
        j.a.p += first * whole.a.sw;
    } else {
        j.n = last - first;
        j.b.p += first * whole.b.sw;
    }
    if (j.c) j.c += shift;
    else j.c16 += shift;
    return j;
}

/// Runs the parts of the product's split over `ember_gemm_threads()` threads, the last on the caller.
static void gemm_parallel(gemm_job whole) {
    gemm_split s = split_for(whole.plan, ember_gemm_threads(), whole.m, whole.n, whole.k);
    if (s.parts == 1) {
        run_job(&whole);
        return;
    }
    gemm_job jobs[64];
    pthread_t ids[64];
    int started[64] = {0};
    for (long t = 0; t < s.parts; t++) jobs[t] = part_job(s, t, whole);
    for (long t = 0; t + 1 < s.parts; t++) started[t] = pthread_create(&ids[t], NULL, run_job, &jobs[t]) == 0;
    run_job(&jobs[s.parts - 1]);
    for (long t = 0; t + 1 < s.parts; t++) {
        if (started[t]) pthread_join(ids[t], NULL);
        else run_job(&jobs[t]);
    }
}

// MARK: Entry points

/// Runs the product, into float32 `c` or 16-bit `c16` of the operands' format, on the
/// threads of `ember_gemm_threads()`, or only part `part` of `parts` of it on the calling
/// thread when `parts` is positive.
static void gemm16(ember_isa isa, int half, long part, long parts, int transA, int transB, long m, long n, long k,
                   float alpha, const uint16_t *a, long lda, const uint16_t *b, long ldb, float beta, float *c,
                   uint16_t *c16, long ldc) {
    if (m <= 0 || n <= 0) return;
    gemm_plan p = plan_for(isa, half);
    operand oa = transA ? (operand){a, 1, lda} : (operand){a, lda, 1};
    operand ob = transB ? (operand){b, ldb, 1} : (operand){b, 1, ldb};
    gemm_job j = {&p, m, n, k, alpha, beta, oa, ob, c16 ? NULL : c, c16, half, ldc};
    if (parts > 0) {
        gemm_split s = split_for(&p, (int)parts, m, n, k);
        if (part >= s.parts) return;
        j = part_job(s, part, j);
        if (j.m <= 0 || j.n <= 0) return;
    }
    if (!j.c16 && (k <= 0 || alpha == 0)) scale_c(j.m, j.n, beta, j.c, ldc);
    else if (parts > 0) run_job(&j);
    else gemm_parallel(j);
}

static ember_isa isa_of(ember_half_format format) {
    return format == EMBER_BFLOAT16 ? ember_cpu_isa_bf16() : ember_cpu_isa();
}

long ember_gemm16_parts(ember_half_format format, int threads, long m, long n, long k) {
    if (m <= 0 || n <= 0 || k <= 0) return 1;
    gemm_plan p = plan_for(isa_of(format), format == EMBER_FLOAT16);
    return split_for(&p, threads, m, n, k).parts;
}

void ember_gemm16_part(ember_half_format format, long part, long parts, int transA, int transB, long m, long n, long k,
                       float alpha, const uint16_t *a, long lda, const uint16_t *b, long ldb, float beta, void *c,
                       int narrowC, long ldc) {
    gemm16(isa_of(format), format == EMBER_FLOAT16, part, parts > 0 ? parts : 1, transA, transB, m, n, k, alpha, a, lda,
           b, ldb, beta, narrowC ? NULL : c, narrowC ? c : NULL, ldc);
}

ember_isa ember_cpu_isa_bf16(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bf16"))
        return amx_permitted() ? EMBER_ISA_AMX_BF16 : EMBER_ISA_AVX512_BF16;
#endif
    return ember_cpu_isa();
}

void ember_gemm_bf16_isa(ember_isa isa, int transA, int transB, long m, long n, long k, float alpha, const uint16_t *a,
                         long lda, const uint16_t *b, long ldb, float beta, float *c, long ldc) {
    gemm16(isa, 0, 0, 0, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, NULL, ldc);
}

void ember_gemm_bf16(int transA, int transB, long m, long n, long k, float alpha, const uint16_t *a, long lda,
                     const uint16_t *b, long ldb, float beta, float *c, long ldc) {
    gemm16(ember_cpu_isa_bf16(), 0, 0, 0, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, NULL, ldc);
}

void ember_gemm_f16_isa(ember_isa isa, int transA, int transB, long m, long n, long k, float alpha, const uint16_t *a,
                        long lda, const uint16_t *b, long ldb, float beta, float *c, long ldc) {
    gemm16(isa, 1, 0, 0, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, NULL, ldc);
}

void ember_gemm_f16(int transA, int transB, long m, long n, long k, float alpha, const uint16_t *a, long lda,
                    const uint16_t *b, long ldb, float beta, float *c, long ldc) {
    gemm16(ember_cpu_isa(), 1, 0, 0, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, NULL, ldc);
}
