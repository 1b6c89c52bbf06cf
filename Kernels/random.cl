// Counter-based random fills, bit-identical to CPUBackend.randomBits:
// splitmix64(seed + counter * 0x9E3779B97F4A7C15).

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

__kernel void random_normal(__global float* dst, int n, ulong seed, ulong offset, float mean, float std_dev) {
    int i = get_global_id(0);
    if (i >= n) return;
    ulong c = offset + 2UL * (ulong)i;
    float u1 = ((float)(random_bits(seed, c) >> 40) + 0.5f) * 0x1p-24f;
    float u2 = (float)(random_bits(seed, c + 1UL) >> 40) * 0x1p-24f;
    dst[i] = mean + std_dev * sqrt(-2.0f * log(u1)) * cos(2.0f * M_PI_F * u2);
}

__kernel void random_integer(__global int* dst, int n, ulong seed, ulong offset, int low, ulong range) {
    int i = get_global_id(0);
    if (i >= n) return;
    ulong h = random_bits(seed, offset + (ulong)i);
    dst[i] = low + (int)(((h >> 32) * range) >> 32);
}
