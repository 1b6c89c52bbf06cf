// Float storage types, prepended to the programs built once per type: STORAGE 0 float32,
// 1 float16 (ushort bits, converted with integer operations: no cl_khr_fp16 needed), 2 bfloat16
// (ushort bits, rounded to nearest even). ELEM is the buffer element type; LOAD widens an
// element to float, STORE rounds a float into one.

#ifndef STORAGE
#define STORAGE 0
#endif

// bfloat16 <-> float: the top 16 bits, rounded to nearest even; NaN stays a (quiet) NaN.
inline float bf16_to_float(ushort b) { return as_float((uint)b << 16); }
inline ushort float_to_bf16(float f) {
    uint u = as_uint(f);
    if (isnan(f)) return (ushort)((u >> 16) | 0x40);
    return (ushort)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

// IEEE half <-> float with integer operations (PoCL's vload_half/vstore_half_rte are scalar
// library calls; these vectorise): exact widening, subnormals included, and rounding to
// nearest even (from 65520 up to infinity; NaN stays a quiet NaN).
inline float half_to_float(ushort h) {
    uint sign = ((uint)h & 0x8000u) << 16, magnitude = ((uint)h & 0x7fffu) << 13;
    // Normals: rebias the exponent; subnormals: the mantissa times 2^-24 (a float normal).
    uint subnormal = as_uint((float)(h & 0x3ffu) * 0x1p-24f);
    uint bits = magnitude >= 0x0f800000u ? (magnitude | 0x7f800000u) : (magnitude < 0x00800000u ? subnormal : magnitude + 0x38000000u);
    return as_float(bits | sign);
}
// The same value by rescaling: the magnitude's bits read as a float are the value times
// 2^-112 (subnormals too, given denormal support). PoCL vectorises the reduction loops with
// this form 2-3x better and the elementwise ones 4x worse than with the one above (measured),
// so reduce.cl loads with this one.
inline float half_to_float_scaled(ushort h) {
    uint sign = ((uint)h & 0x8000u) << 16, magnitude = ((uint)h & 0x7fffu) << 13;
    uint scaled = as_uint(as_float(magnitude) * 0x1p112f);
    return as_float((magnitude >= 0x0f800000u ? (magnitude | 0x7f800000u) : scaled) | sign);
}

inline ushort float_to_half(float f) {
    uint u = as_uint(f), a = u & 0x7fffffffu;
    ushort sign = (ushort)((u >> 16) & 0x8000u);
    uint overflow = a > 0x7f800000u ? 0x7e00u : 0x7c00u;
    uint tiny = as_uint(as_float(a) + 0.5f) - 0x3f000000u;
    uint normal = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;
    uint magnitude = a >= 0x47800000u ? overflow : (a < 0x38800000u ? tiny : normal);
    return (ushort)magnitude | sign;
}

// Full runs of float16 on CPU devices (RUN a multiple of 8, as there) go a chunk of eight
// elements at a time: half_chunk_in widens one with vload_half8 into a float8, whose lanes the
// op's scalar code reads through a pointer, and half_chunk_out rounds eight results with
// vstore_half8_rte. PoCL vectorises these where its scalar vload_half does not and the
// conversions above vectorise worse (add 16M: 11.8 ms with those, 6.0 ms with whole runs
// staged through private arrays, float32 9.7 ms, on one machine; staged 3.7-4.9 ms against
// 2.6-3.1 ms by chunks on another). The bits equal the conversions above (checked over every
// half and 4M float patterns; only NaN payloads may differ).
#if defined(RUN) && RUN % 8 == 0
#define HALF_RUNS 1
inline float8 half_chunk_in(__global const ushort* p) { return vload_half8(0, (__global const half*)p); }
inline void half_chunk_out(__global ushort* p, float8 v) { vstore_half8_rte(v, 0, (__global half*)p); }
#else
#define HALF_RUNS 0
#endif

// float_to_bf16 of sixteen values.
inline ushort16 float16_to_bf16(float16 f) {
    uint16 u = as_uint16(f);
    return convert_ushort16(select((u + 0x7fffu + ((u >> 16) & 1u)) >> 16, (u >> 16) | 0x40u, isnan(f)));
}

// LOAD16(p, i): elements i ... i + 15 as a float16 vector (float16: vload_half16, which PoCL
// vectorises better than the conversions above: a float16 sum of 16M 2.6 -> 1.4 ms);
// STORE16(p, i, v) rounds one into elements i ... i + 15.
#if STORAGE == 1
#define LOAD16(p, i) vload_half16(0, (__global const half*)(p) + (i))
#define STORE16(p, i, v) vstore_half16_rte(v, 0, (__global half*)(p) + (i))
#elif STORAGE == 2
#define LOAD16(p, i) as_float16(convert_uint16(vload16(0, (p) + (i))) << 16)
#define STORE16(p, i, v) vstore16(float16_to_bf16(v), 0, (p) + (i))
#else
#define LOAD16(p, i) vload16(0, (p) + (i))
#define STORE16(p, i, v) vstore16(v, 0, (p) + (i))
#endif

#if STORAGE == 1
#define ELEM ushort
#define LOAD(p, i) half_to_float((p)[i])
#define STORE(p, i, v) ((p)[i] = float_to_half(v))
#elif STORAGE == 2
#define ELEM ushort
#define LOAD(p, i) bf16_to_float((p)[i])
#define STORE(p, i, v) ((p)[i] = float_to_bf16(v))
#else
#define ELEM float
#define LOAD(p, i) ((p)[i])
#define STORE(p, i, v) ((p)[i] = (v))
#endif

