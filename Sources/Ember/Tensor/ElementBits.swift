/// Bit-level conversions between Float32 and the narrow float formats, shared by the CPU
/// loops, host reads and writes and constant fills. They round to nearest even and keep NaN a
/// NaN, as the OpenCL kernels do (`Kernels/elementwise.cl`). Written without branches on the
/// value's class, so loops over them vectorise.
enum ElementBits {
    /// The Float32 a bfloat16 bit pattern stands for.
    @inline(__always)
    static func bfloat16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// `x` rounded to the nearest bfloat16 (ties to even); NaN becomes a quiet NaN.
    @inline(__always)
    static func floatToBfloat16(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        let rounded = UInt16(truncatingIfNeeded: (u &+ 0x7fff &+ ((u >> 16) & 1)) >> 16)
        let nan = UInt16(truncatingIfNeeded: (u >> 16) | 0x40)
        return x.isNaN ? nan : rounded
    }

    /// The Float32 an IEEE half bit pattern stands for (subnormals, infinities and NaN included).
    @inline(__always)
    static func halfToFloat(_ bits: UInt16) -> Float {
        let h = UInt32(bits)
        let sign = (h & 0x8000) << 16
        let magnitude = (h & 0x7fff) << 13
        let exponent = magnitude & 0x0f80_0000
        // Normal numbers: rebias the exponent by 127 - 15.
        let normal = magnitude &+ 0x3800_0000
        // Infinity and NaN: all-ones exponent.
        let special = magnitude | 0x7f80_0000
        // Subnormals: the mantissa scaled by 2^-24 exactly.
        let subnormal = (Float(bitPattern: magnitude &+ 0x3880_0000) - Float(bitPattern: 0x3880_0000)).bitPattern
        let result = exponent == 0x0f80_0000 ? special : (exponent == 0 ? subnormal : normal)
        return Float(bitPattern: result | sign)
    }

    /// `x` rounded to the nearest IEEE half (ties to even): overflow gives infinity, tiny values
    /// subnormals or zero, NaN a quiet NaN.
    @inline(__always)
    static func floatToHalf(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        let sign = UInt16(truncatingIfNeeded: (u >> 16) & 0x8000)
        let a = u & 0x7fff_ffff
        // Values at or above 65520 round to infinity; NaN keeps a quiet payload.
        let overflow: UInt32 = a > 0x7f80_0000 ? 0x7e00 : 0x7c00
        // Below 2^-14 the result is subnormal: adding 0.5 (as a float) aligns the mantissa so
        // the FPU's own rounding is round-to-nearest-even at the half's last place.
        let tiny = (Float(bitPattern: a) + 0.5).bitPattern &- 0x3f00_0000
        // Normal range: rebias, then round to even on the 13 dropped bits.
        let odd = (a >> 13) & 1
        let normal = (a &+ 0xc800_0fff &+ odd) >> 13
        let magnitude = a >= 0x4780_0000 ? overflow : (a < 0x3880_0000 ? tiny : normal)
        return UInt16(truncatingIfNeeded: magnitude) | sign
    }
}

extension DType {
    /// The bit pattern of `value` stored as this type (in the low `byteSize` bytes), as a
    /// cast converts: floats rounded to nearest even, integers truncated toward zero, bool
    /// non-zero as 1.
    func bits(of value: Double) -> UInt64 {
        switch self {
        case .float32: return UInt64(Float(value).bitPattern)
        case .float16: return UInt64(ElementBits.floatToHalf(Float(value)))
        case .bfloat16: return UInt64(ElementBits.floatToBfloat16(Float(value)))
        case .int32: return UInt64(UInt32(bitPattern: Int32(value)))
        case .int64: return UInt64(bitPattern: Int64(value))
        case .uint8: return UInt64(UInt8(truncatingIfNeeded: Int64(value)))
        case .bool: return value != 0 ? 1 : 0
        }
    }

    /// The value of the element at `index` of host bytes `raw` holding this type.
    func value(in raw: UnsafeRawBufferPointer, at index: Int) -> Double {
        switch self {
        case .float32: return Double(raw.loadUnaligned(fromByteOffset: index * 4, as: Float.self))
        case .float16: return Double(ElementBits.halfToFloat(raw.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
        case .bfloat16: return Double(ElementBits.bfloat16ToFloat(raw.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
        case .int32: return Double(raw.loadUnaligned(fromByteOffset: index * 4, as: Int32.self))
        case .int64: return Double(raw.loadUnaligned(fromByteOffset: index * 8, as: Int64.self))
        case .uint8: return Double(raw[index])
        case .bool: return raw[index] != 0 ? 1 : 0
        }
    }
}
