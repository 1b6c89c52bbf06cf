// Counter-based random fills, bit-identical to CPUBackend.randomBits:
// splitmix64(seed + counter * 0x9E3779B97F4A7C15). Normal samples are bit-identical too:
// standard_normal uses only correctly rounded float +, - and * and bit operations, in the
// order CPUBackend.standardNormal uses them, with contraction into fma turned off.

#pragma OPENCL FP_CONTRACT OFF

inline ulong random_bits(ulong seed, ulong counter) {
    ulong z = seed + counter * 0x9E3779B97F4A7C15UL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
    return z ^ (z >> 31);
}

__kernel void random_uniform(__global float* dst, int n, ulong seed, ulong offset, float low, float high) {
    int i = get_global_id(0);
    if (i >= n) return;
    float u = (float)(random_bits(seed, offset + (ulong)i) >> 40) * 0x1p-24f;
    dst[i] = fma(high - low, u, low);
}

// Box-Muller sqrt(-2 ln u1) cos(2 pi u2) with polynomial ln and cos and a Newton sqrt
// (see CPUBackend.standardNormal for the derivation).
inline float standard_normal(ulong bits1, ulong bits2) {
    float u1 = ((float)(bits1 >> 40) + 0.5f) * 0x1p-24f, u2 = (float)(bits2 >> 40) * 0x1p-24f;
    int e = (int)((as_uint(u1) >> 23) & 0xffu) - 127;
    float m = as_float((as_uint(u1) & 0x7fffffu) | 0x3f800000u);
    if (m > 1.41421356f) { m = m * 0.5f; e += 1; }
    float t = m - 1.0f;
    float q = 0.0874394551f;
    q = q * t - 0.143773302f; q = q * t + 0.149490952f; q = q * t - 0.165606961f;
    q = q * t + 0.199569777f; q = q * t - 0.250021547f; q = q * t + 0.333341837f;
    q = q * t - 0.499999881f; q = q * t + 1.0f;
    float r = -2.0f * ((float)e * 0.693147182f + t * q);
    float y = as_float(0x5f3759dfu - (as_uint(r) >> 1));
    float half_r = 0.5f * r;
    y = y * (1.5f - half_r * y * y); y = y * (1.5f - half_r * y * y); y = y * (1.5f - half_r * y * y);
    float radius = r * y;
    float quarter = u2 * 4.0f;
    int quadrant = (int)quarter;
    float x = (quarter - (float)quadrant) * 1.57079637f, x2 = x * x;
    float s = -2.50521084e-08f;
    s = s * x2 + 2.75573192e-06f; s = s * x2 - 1.98412698e-04f; s = s * x2 + 8.33333333e-03f;
    s = s * x2 - 1.66666667e-01f; s = s * x2 + 1.0f; s = s * x;
    float c = 2.08767570e-09f;
    c = c * x2 - 2.75573192e-07f; c = c * x2 + 2.48015873e-05f; c = c * x2 - 1.38888889e-03f;
    c = c * x2 + 4.16666667e-02f; c = c * x2 - 0.5f; c = c * x2 + 1.0f;
    float angle = quadrant == 0 ? c : quadrant == 1 ? -s : quadrant == 2 ? -c : s;
    return radius * angle;
}

__kernel void random_normal(__global float* dst, int n, ulong seed, ulong offset, float mean, float std_dev) {
    int i = get_global_id(0);
    if (i >= n) return;
    ulong c = offset + 2UL * (ulong)i;
    dst[i] = mean + std_dev * standard_normal(random_bits(seed, c), random_bits(seed, c + 1UL));
}

__kernel void random_integer(__global int* dst, int n, ulong seed, ulong offset, int low, ulong range) {
    int i = get_global_id(0);
    if (i >= n) return;
    ulong h = random_bits(seed, offset + (ulong)i);
    dst[i] = low + (int)(((h >> 32) * range) >> 32);
}
