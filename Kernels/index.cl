// Gather and scatter-add along axis 1 of [outer, size, inner] blocks. Index views are Int32
// with strides (s0, s1, s2) over [outer, j, inner]; an index outside 0..<size reads 0
// (gather) or is skipped (scatter-add).

__kernel void gather(__global const float* src, int off, int size, int inner, int j,
                     __global const int* index, int index_off, int s0, int s1, int s2,
                     __global float* dst, int n) {
    int t = get_global_id(0);
    if (t >= n) return;
    int i = t % inner, jj = (t / inner) % j, o = t / (inner * j);
    int k = index[index_off + o * s0 + jj * s1 + i * s2];
    dst[t] = (k >= 0 && k < size) ? src[off + ((long)o * size + k) * inner + i] : 0.0f;
}

// Float atomic add through a compare-and-swap loop on the bits (OpenCL 1.2 has no float atomics).
inline void atomic_add_float(volatile __global float* address, float value) {
    volatile __global int* bits = (volatile __global int*)address;
    int expected = *bits;
    while (true) {
        int desired = as_int(as_float(expected) + value);
        int seen = atomic_cmpxchg(bits, expected, desired);
        if (seen == expected) break;
        expected = seen;
    }
}

__kernel void scatter_add(__global const float* values, int values_off, int v0, int v1, int v2,
                          __global const int* index, int index_off, int s0, int s1, int s2,
                          int size, int inner, int j, __global float* dst, int n) {
    int t = get_global_id(0);
    if (t >= n) return;
    int i = t % inner, jj = (t / inner) % j, o = t / (inner * j);
    int k = index[index_off + o * s0 + jj * s1 + i * s2];
    if (k < 0 || k >= size) return;
    atomic_add_float(dst + ((long)o * size + k) * inner + i, values[values_off + o * v0 + jj * v1 + i * v2]);
}
