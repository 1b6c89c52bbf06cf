import Foundation

/// The GEMM an OpenCL device runs: Ember's kernel (`gemm.cl`) or CLBlast.
public enum GEMMImplementation: String, Codable, Sendable {
    /// Ember's blocked float16 kernel from `Kernels/gemm.cl`.
    case ember
    /// CLBlast's `Sgemm` with its default parameters for the device.
    case clblast
}

/// Which GEMM an OpenCL device runs and why: measured on the device the first time a GEMM
/// runs there (both on a 512 x 512 x 512 product, the faster wins), or read from the cache
/// of earlier measurements, or forced with `EMBER_GEMM=ember|clblast`.
public struct GEMMChoice: Codable, Equatable, Sendable {
    /// The implementation the device uses.
    public var implementation: GEMMImplementation
    /// GFLOP/s Ember's kernel reached in the measurement (nil when forced or when it failed).
    public var emberGFLOPS: Double?
    /// GFLOP/s CLBlast reached in the measurement (nil when forced or when it failed).
    public var clblastGFLOPS: Double?
    /// Where the choice came from: "measured", "cached", "EMBER_GEMM", or "device type" when
    /// it could not be measured.
    public var source: String

    /// The file of earlier measurements, one entry per device, driver and `gemm.cl` version:
    /// `$EMBER_CACHE_DIR/gemm-choices.json`, else under `$XDG_CACHE_HOME/ember`, else
    /// `~/.cache/ember`.
    static var cacheFile: URL {
        let environment = ProcessInfo.processInfo.environment
        let directory: URL
        if let ember = environment["EMBER_CACHE_DIR"], !ember.isEmpty {
            directory = URL(fileURLWithPath: ember)
        } else if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            directory = URL(fileURLWithPath: xdg).appendingPathComponent("ember")
        } else {
            directory = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/ember")
        }
        return directory.appendingPathComponent("gemm-choices.json")
    }

    /// The implementation `EMBER_GEMM` forces, if set; an unknown value stops with a message.
    static func forced() -> GEMMChoice? {
        guard let value = ProcessInfo.processInfo.environment["EMBER_GEMM"], !value.isEmpty else { return nil }
        guard let implementation = GEMMImplementation(rawValue: value.lowercased()) else {
            fatalError("EMBER_GEMM=\(value): expected ember or clblast")
        }
        return GEMMChoice(implementation: implementation, emberGFLOPS: nil, clblastGFLOPS: nil, source: "EMBER_GEMM")
    }

    /// The cached choice for `key`, if any (an unreadable cache counts as empty).
    static func cached(key: String) -> GEMMChoice? {
        guard let data = try? Data(contentsOf: cacheFile),
              var choice = (try? JSONDecoder().decode([String: GEMMChoice].self, from: data))?[key] else { return nil }
        choice.source = "cached"
        return choice
    }

    /// Adds this choice under `key` to the cache file, written whole to a temporary file and
    /// renamed so readers never see half a file. Failing to write only loses the cache.
    func store(key: String) {
        let file = GEMMChoice.cacheFile
        var all = (try? Data(contentsOf: file)).flatMap { try? JSONDecoder().decode([String: GEMMChoice].self, from: $0) } ?? [:]
        all[key] = self
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(all) else { return }
        try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? data.write(to: file, options: .atomic)
    }

    /// FNV-1a digest of a kernel source, so an edited `gemm.cl` is measured again.
    static func digest(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}
