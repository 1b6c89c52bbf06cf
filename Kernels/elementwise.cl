// Elementwise kernels: copies, casts, constants, unary / binary / select over broadcast
// strides. Op codes match UnaryOp.code and BinaryOp.rawValue in Backend.swift.
// Strided operands pass their collapsed shape and strides as int8 (at most 8 dims).

inline int strided_offset(int i, int rank, int8 shape, int8 stride) {
    int sh[8], st[8];
    vstore8(shape, 0, sh);
    vstore8(stride, 0, st);
    int off = 0;
    for (int d = rank - 1; d >= 0; --d) {
        int q = i % sh[d];
        i /= sh[d];
        off += q * st[d];
    }
    return off;
}

inline float unary_op(int op, float x, float p0, float p1) {
    switch (op) {
    case 0: return -x;
    case 1: return fabs(x);
    case 2: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x);
    case 3: return exp(x);
    case 4: return log(x);
    case 5: return sqrt(x);
    case 6: return 1.0f / sqrt(x);
    case 7: return x * x;
    case 8: return 1.0f / x;
    case 9: return sin(x);
    case 10: return cos(x);
    case 11: return tanh(x);
    case 12: return 1.0f / (1.0f + exp(-x));
    case 13: return x > 0.0f ? x : 0.0f;
    case 14: return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f));
    case 15: return erf(x);
    case 16: return x > 0.0f ? x : p0 * x;
    case 17: return fmin(fmax(x, p0), p1);
    default: return p0 == 2.0f ? x * x : pow(x, p0);
    }
}

inline float binary_op(int op, float a, float b) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return pow(a, b);
    case 5: return (isnan(a) || isnan(b)) ? NAN : fmax(a, b);
    case 6: return (isnan(a) || isnan(b)) ? NAN : fmin(a, b);
    case 7: return a == b ? 1.0f : 0.0f;
    case 8: return a != b ? 1.0f : 0.0f;
    case 9: return a < b ? 1.0f : 0.0f;
    case 10: return a <= b ? 1.0f : 0.0f;
    case 11: return a > b ? 1.0f : 0.0f;
    default: return a >= b ? 1.0f : 0.0f;
    }
}

// One operand of binary/select: a strided view, or a scalar when is_scalar != 0.
inline float load_operand(__global const float* p, int off, int8 stride, float scalar, int is_scalar,
                          int i, int rank, int8 shape, int contiguous) {
    if (is_scalar) return scalar;
    if (contiguous) return p[off + i];
    return p[off + strided_offset(i, rank, shape, stride)];
}

__kernel void copy_strided(__global const uint* src, int src_off, __global uint* dst, int n,
                           int rank, int8 shape, int8 stride, int contiguous) {
    int i = get_global_id(0);
    if (i >= n) return;
    dst[i] = contiguous ? src[src_off + i] : src[src_off + strided_offset(i, rank, shape, stride)];
}

__kernel void cast_float_to_int(__global const float* src, int src_off, __global int* dst, int n,
                                int rank, int8 shape, int8 stride) {
    int i = get_global_id(0);
    if (i >= n) return;
    dst[i] = convert_int_sat_rtz(src[src_off + strided_offset(i, rank, shape, stride)]);
}

__kernel void cast_int_to_float(__global const int* src, int src_off, __global float* dst, int n,
                                int rank, int8 shape, int8 stride) {
    int i = get_global_id(0);
    if (i >= n) return;
    dst[i] = (float)src[src_off + strided_offset(i, rank, shape, stride)];
}

__kernel void fill_bits(__global uint* dst, int n, uint bits) {
    int i = get_global_id(0);
    if (i >= n) return;
    dst[i] = bits;
}

__kernel void arange_float(__global float* dst, int n, float start, float step) {
    int i = get_global_id(0);
    if (i >= n) return;
    dst[i] = start + (float)i * step;
}

__kernel void arange_int(__global int* dst, int n, int start, int step) {
    int i = get_global_id(0);
    if (i >= n) return;
    dst[i] = start + i * step;
}

__kernel void unary(__global const float* src, int src_off, __global float* dst, int n,
                    int rank, int8 shape, int8 stride, int contiguous, int op, float p0, float p1) {
    int i = get_global_id(0);
    if (i >= n) return;
    float x = contiguous ? src[src_off + i] : src[src_off + strided_offset(i, rank, shape, stride)];
    dst[i] = unary_op(op, x, p0, p1);
}

__kernel void binary(__global const float* a, int a_off, int8 a_stride, float a_scalar, int a_is_scalar,
                     __global const float* b, int b_off, int8 b_stride, float b_scalar, int b_is_scalar,
                     __global float* dst, int n, int rank, int8 shape, int contiguous, int op) {
    int i = get_global_id(0);
    if (i >= n) return;
    float x = load_operand(a, a_off, a_stride, a_scalar, a_is_scalar, i, rank, shape, contiguous);
    float y = load_operand(b, b_off, b_stride, b_scalar, b_is_scalar, i, rank, shape, contiguous);
    dst[i] = binary_op(op, x, y);
}

__kernel void select_where(__global const float* c, int c_off, int8 c_stride,
                           __global const float* a, int a_off, int8 a_stride, float a_scalar, int a_is_scalar,
                           __global const float* b, int b_off, int8 b_stride, float b_scalar, int b_is_scalar,
                           __global float* dst, int n, int rank, int8 shape, int contiguous) {
    int i = get_global_id(0);
    if (i >= n) return;
    float cond = contiguous ? c[c_off + i] : c[c_off + strided_offset(i, rank, shape, c_stride)];
    dst[i] = cond != 0.0f ? load_operand(a, a_off, a_stride, a_scalar, a_is_scalar, i, rank, shape, contiguous)
                          : load_operand(b, b_off, b_stride, b_scalar, b_is_scalar, i, rank, shape, contiguous);
}
