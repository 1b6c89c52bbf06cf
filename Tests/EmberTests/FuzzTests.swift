import Foundation
import Testing
@testable import Ember

/// Seeded random mutations of valid files: the readers must throw or succeed, never crash,
/// hang or allocate without bound (every size is checked against the input first).
@Suite("Reader fuzzing")
struct FuzzTests {
    /// `count` mutants of `seed`: byte flips, random bytes, truncations, insertions and
    /// overwritten 8-byte little-endian words (header lengths and offsets).
    static func mutants(of seed: Data, count: Int, randomSeed: UInt64, _ body: (Data) -> Void) {
        var random = TestRandom(seed: randomSeed)
        let original = [UInt8](seed)
        for _ in 0..<count {
            var bytes = original
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let position = bytes.isEmpty ? 0 : Int(random.next() % UInt64(bytes.count))
                switch random.next() % 6 {
                case 0 where !bytes.isEmpty: bytes[position] ^= UInt8(1 << (random.next() % 8))
                case 1 where !bytes.isEmpty: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                case 2: bytes = Array(bytes.prefix(position))
                case 3: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                case 4 where bytes.count >= 8:
                    let at = Int(random.next() % UInt64(bytes.count - 7))
                    let word = random.next() % 2 == 0 ? random.next() : random.next() % 4096
                    withUnsafeBytes(of: word.littleEndian) { for k in 0..<8 { bytes[at + k] = $0[k] } }
                default: bytes.append(contentsOf: [UInt8](repeating: UInt8(truncatingIfNeeded: random.next()), count: Int(random.next() % 16)))
                }
            }
            body(Data(bytes))
        }
    }

    @Test("safetensors: 100,000 mutated files")
    func safetensors() throws {
        let url = temporaryFolder().appendingPathComponent("seed.safetensors")
        try SafeTensors.write(["w": Tensor.randn([3, 4]), "b": Tensor([1, 2, 3], dtype: .int32), "s": Tensor(2), "m": Tensor([1, 0, 1], dtype: .bool)], to: url, metadata: ["k": "v"])
        var parsed = 0
        FuzzTests.mutants(of: try Data(contentsOf: url), count: 100_000, randomSeed: 1) { data in
            if (try? SafeTensors.parse(data, path: "fuzz")) != nil { parsed += 1 }
        }
        #expect(parsed > 0)
        // A shape whose byte size overflows Int is rejected, not trapped on.
        let header = #"{"a":{"dtype":"F64","shape":[1152921504606846976],"data_offsets":[0,8]}}"#
        var file = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: Array(header.utf8) + [UInt8](repeating: 0, count: 8))
        #expect(throws: EmberError.self) { try SafeTensors.parse(file, path: "overflow") }
    }

    @Test("IDX: 100,000 mutated image files")
    func idx() {
        let images = idxFile(magic: 0x803, dims: [3, 4, 4], payload: (0..<48).map { UInt8($0) })
        let labels = idxFile(magic: 0x801, dims: [3], payload: [1, 2, 3])
        var parsed = 0
        FuzzTests.mutants(of: images, count: 100_000, randomSeed: 2) { data in
            if (try? IDXDataset(imageData: data, imagePath: "fuzz", labelData: labels, labelPath: "labels")) != nil { parsed += 1 }
        }
        #expect(parsed > 0)
    }

    @Test("gzip: 100,000 mutated compressed files")
    func gzip() throws {
        let folder = temporaryFolder()
        let compressed = try gzipped(idxFile(magic: 0x803, dims: [2, 8, 8], payload: (0..<128).map { UInt8($0) }), in: folder)
        var inflated = 0
        FuzzTests.mutants(of: compressed, count: 100_000, randomSeed: 4) { data in
            if (try? Gzip.decompress(data, path: "fuzz", limit: 1 << 20)) != nil { inflated += 1 }
        }
        #expect(inflated > 0)
    }

    @Test("CSV: 100,000 mutated files")
    func csv() {
        let text = Data("1,2,3,0\n4.5,-6,7e-1,1\n8,9,10,2\n".utf8)
        var parsed = 0
        FuzzTests.mutants(of: text, count: 100_000, randomSeed: 3) { data in
            if (try? CSVDataset(data: data, path: "fuzz", labelColumn: 3, hasHeader: false)) != nil { parsed += 1 }
        }
        #expect(parsed > 0)
    }
}
