// Convolution and pooling building blocks over contiguous NCHW tensors.
// Geometry arguments: N, C, H, W, kernel (kh, kw), stride (sh, sw), padding (ph, pw),
// dilation (dh, dw), output (oh, ow).

#define GEOMETRY int N, int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int oh, int ow

// The taps i in [0, count) whose position start + i * step lies in [0, size), the ones that
// are not padding, as (first, end).
inline int2 inside(int count, int start, int step, int size) {
    int low = start >= 0 ? 0 : (step - 1 - start) / step;
    int high = start >= size ? 0 : min(count, (size - 1 - start) / step + 1);
    return (int2)(low, max(low, high));
}

// im2col, col2im and max pooling read and write the storage type ELEM (storage.cl; this
// program is built once per float storage type). Average pooling reads and writes float: its
// kernels are launched from the float32 build only.

// One work-item per row of cols [N, C*kh*kw, oh*ow]: (n, r, y) writes the ow columns of
// output row y for patch entry r, decoding its indices once. A copy of elements (bit for bit
// in every storage type), zero for padding.
__kernel void im2col(__global const ELEM* src, int off, __global ELEM* cols, GEOMETRY) {
    int t = get_global_id(0);
    int K = C * kh * kw;
    if (t >= N * K * oh) return;
    int y = t % oh, r = (t / oh) % K, n = t / (oh * K);
    int c = r / (kh * kw), ki = (r / kw) % kh, kj = r % kw;
    int ih = y * sh - ph + ki * dh;
    __global ELEM* out = cols + ((long)(n * K + r) * oh + y) * ow;
    if (ih < 0 || ih >= H) {
        for (int x = 0; x < ow; ++x) out[x] = (ELEM)0;
        return;
    }
    __global const ELEM* line = src + off + ((long)(n * C + c) * H + ih) * W;
    int iw = kj * dw - pw;
    for (int x = 0; x < ow; ++x, iw += sw) out[x] = (iw >= 0 && iw < W) ? line[iw] : (ELEM)0;
}

// Pixels of a col2im row summed at once in private Float32 accumulators.
#define COL2IM_CHUNK 64

// One work-item per input row (n, c, ih): sums, for each pixel of the row, every column
// entry that im2col read from it, in Float32 (taps in scan order), a chunk of the row at a
// time, and stores each pixel once (rounded once in a 16-bit storage type).
__kernel void col2im(__global const ELEM* cols, int off, __global ELEM* dst, GEOMETRY) {
    int t = get_global_id(0);
    if (t >= N * C * H) return;
    int ih = t % H, c = (t / H) % C, n = t / (H * C);
    int L = oh * ow, K = C * kh * kw;
    __global ELEM* out = dst + (long)t * W;
    float acc[COL2IM_CHUNK];
    for (int c0 = 0; c0 < W; c0 += COL2IM_CHUNK) {
        int width = min(COL2IM_CHUNK, W - c0);
        for (int i = 0; i < width; ++i) acc[i] = 0.0f;
        for (int ki = 0; ki < kh; ++ki) {
            int yy = ih + ph - ki * dh;
            if (yy < 0 || yy % sh != 0 || yy / sh >= oh) continue;
            int y = yy / sh;
            for (int kj = 0; kj < kw; ++kj) {
                int r = (c * kh + ki) * kw + kj;
                __global const ELEM* row = cols + off + ((long)n * K + r) * L + y * ow;
                // Column x lands on pixel x * sw + shift of the row, at acc[x * sw + shift - c0].
                int start = kj * dw - pw - c0;
                int2 xs = inside(ow, start, sw, width);
                for (int x = xs.x; x < xs.y; ++x) acc[x * sw + start] += LOAD(row, x);
            }
        }
        for (int i = 0; i < width; ++i) STORE(out, c0 + i, acc[i]);
    }
}

// The first maximum of each window and its index in the H*W plane, one work-item per run of
// RUN outputs of an output row (row = nc * oh + y). The first tap in scan order wins ties
// and the first NaN wins over numbers, with selects, not branches.
__kernel void max_pool2d(__global const ELEM* src, int off, __global ELEM* dst, __global int* indices, GEOMETRY) {
    int runs = (ow + RUN - 1) / RUN, t = get_global_id(0);
    if (t >= N * C * oh * runs) return;
    int row = t / runs, x0 = t % runs * RUN;
    int y = row % oh, nc = row / oh;
    __global const ELEM* plane = src + off + (long)nc * H * W;
    int top = y * sh - ph;
    int2 kis = inside(kh, top, dh, H);
    for (int x = x0; x < min(ow, x0 + RUN); ++x) {
        int left = x * sw - pw;
        int2 kjs = inside(kw, left, dw, W);
        float best = -INFINITY;
        int at = 0;
        if (kis.x < kis.y && kjs.x < kjs.y) {
            at = (top + kis.x * dh) * W + left + kjs.x * dw;
            best = LOAD(plane, at);
            for (int ki = kis.x; ki < kis.y; ++ki) {
                int line = (top + ki * dh) * W + left;
                for (int kj = kjs.x; kj < kjs.y; ++kj) {
                    int i = line + kj * dw;
                    float v = LOAD(plane, i);
                    bool take = v > best || (isnan(v) && !isnan(best));
                    best = take ? v : best;
                    at = take ? i : at;
                }
            }
        }
        STORE(dst, (long)row * ow + x, best);
        indices[(long)row * ow + x] = at;
    }
}

// The output rows (or columns) whose windows can cover input position i: first..last.
inline int2 covering(int i, int pad, int k, int dil, int stride, int outs) {
    int low = i + pad - (k - 1) * dil;
    int first = low <= 0 ? 0 : (low + stride - 1) / stride;
    int last = min(outs - 1, (i + pad) / stride);
    return (int2)(first, last);
}

// One work-item per output, for windows that cannot overlap: its gradient goes to the pixel
// its window picked (the destination is zeroed first; no two windows share a pixel).
__kernel void max_pool2d_backward_disjoint(__global const ELEM* grad, __global const int* indices, __global ELEM* dst, GEOMETRY) {
    int t = get_global_id(0);
    if (t >= N * C * oh * ow) return;
    dst[(long)(t / (oh * ow)) * H * W + indices[t]] = grad[t];
}

// One work-item per input pixel: sums the gradients of the windows whose maximum it was, in
// output order, in float, rounded once.
__kernel void max_pool2d_backward(__global const ELEM* grad, __global const int* indices, __global ELEM* dst, GEOMETRY) {
    int t = get_global_id(0);
    if (t >= N * C * H * W) return;
    int iw = t % W, ih = (t / W) % H, nc = t / (W * H);
    int here = ih * W + iw;
    float sum = 0.0f;
    int2 ys = covering(ih, ph, kh, dh, sh, oh), xs = covering(iw, pw, kw, dw, sw, ow);
    for (int y = ys.x; y <= ys.y; ++y) {
        for (int x = xs.x; x <= xs.y; ++x) {
            long o = ((long)nc * oh + y) * ow + x;
            if (indices[o] == here) sum += LOAD(grad, o);
        }
    }
    STORE(dst, t, sum);
}

inline float avg_divisor(int y, int x, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw, int count_padding) {
    if (count_padding) return (float)(kh * kw);
    int h0 = y * sh - ph, w0 = x * sw - pw;
    int rows = min(h0 + kh, H) - max(h0, 0), cols = min(w0 + kw, W) - max(w0, 0);
    return (float)(rows * cols);
}

__kernel void avg_pool2d(__global const float* src, int off, __global float* dst, int count_padding, GEOMETRY) {
    int t = get_global_id(0);
    if (t >= N * C * oh * ow) return;
    int x = t % ow, y = (t / ow) % oh, nc = t / (ow * oh);
    __global const float* plane = src + off + (long)nc * H * W;
    int h0 = y * sh - ph, w0 = x * sw - pw;
    float sum = 0.0f;
    for (int ih = max(h0, 0); ih < min(h0 + kh, H); ++ih)
        for (int iw = max(w0, 0); iw < min(w0 + kw, W); ++iw) sum += plane[ih * W + iw];
    dst[t] = sum / avg_divisor(y, x, H, W, kh, kw, sh, sw, ph, pw, count_padding);
}

// One work-item per input pixel: gathers the share of every window that covers it.
__kernel void avg_pool2d_backward(__global const float* grad, __global float* dst, int count_padding, GEOMETRY) {
    int t = get_global_id(0);
    if (t >= N * C * H * W) return;
    int iw = t % W, ih = (t / W) % H, nc = t / (W * H);
    float sum = 0.0f;
    int2 ys = covering(ih, ph, kh, 1, sh, oh), xs = covering(iw, pw, kw, 1, sw, ow);
    for (int y = ys.x; y <= ys.y; ++y) {
        for (int x = xs.x; x <= xs.y; ++x) {
            sum += grad[((long)nc * oh + y) * ow + x] / avg_divisor(y, x, H, W, kh, kw, sh, sw, ph, pw, count_padding);
        }
    }
    dst[t] = sum;
}
