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

// Sixteen halves at once, as half_to_float_scaled does one.
inline float16 half16_to_float16(ushort16 h) {
    uint16 x = convert_uint16(h);
    uint16 sign = (x & 0x8000u) << 16, magnitude = (x & 0x7fffu) << 13;
    uint16 scaled = as_uint16(as_float16(magnitude) * 0x1p112f);
    return as_float16(select(scaled, magnitude | 0x7f800000u, magnitude >= 0x0f800000u) | sign);
}

// LOAD16(p, i): elements i ... i + 15 as a float16 vector.
#if STORAGE == 1
#define LOAD16(p, i) half16_to_float16(vload16(0, (p) + (i)))
#elif STORAGE == 2
#define LOAD16(p, i) as_float16(convert_uint16(vload16(0, (p) + (i))) << 16)
#else
#define LOAD16(p, i) vload16(0, (p) + (i))
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

