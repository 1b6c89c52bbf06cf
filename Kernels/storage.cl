// Float storage types, prepended to the programs built once per type: STORAGE 0 float32,
// 1 float16 (through vload_half / vstore_half_rte, no cl_khr_fp16 needed), 2 bfloat16
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

#if STORAGE == 1
#define ELEM half
#define LOAD(p, i) vload_half((i), (p))
#define STORE(p, i, v) vstore_half_rte((v), (i), (p))
#elif STORAGE == 2
#define ELEM ushort
#define LOAD(p, i) bf16_to_float((p)[i])
#define STORE(p, i, v) ((p)[i] = float_to_bf16(v))
#else
#define ELEM float
#define LOAD(p, i) ((p)[i])
#define STORE(p, i, v) ((p)[i] = (v))
#endif

