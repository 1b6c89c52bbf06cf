import Foundation
import Testing
@testable import Ember

@Suite("Checkpoints")
struct IOTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    @Test("safetensors round-trips names, shapes, dtypes and values")
    func roundTrip() throws {
        let url = temporaryFolder().appendingPathComponent("t.safetensors")
        let tensors: StateDict = [
            "w": Tensor([[1.5, -2], [3, 4e-8]]), "labels": Tensor([3, -1], dtype: .int32),
            "scalar": Tensor(7), "empty": Tensor.zeros([0, 3]), "view": Tensor.arange(0, 6).reshape([2, 3]).T,
            "mask": Tensor([1, 0, 1], dtype: .bool),
        ]
        try SafeTensors.write(tensors, to: url, metadata: ["note": "hi"])
        let back = try SafeTensors.read(from: url)
        #expect(back.map(\.name).sorted() == tensors.map(\.name).sorted())
        for (name, tensor) in tensors {
            let loaded = back.first { $0.name == name }!.tensor
            #expect(loaded.shape == tensor.shape && loaded.dtype == tensor.dtype)
            #expect(loaded.toArray() == tensor.toArray())
        }
        #expect(try SafeTensors.metadata(from: url) == ["note": "hi"])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)
        #expect(leftovers == ["t.safetensors"])
    }

    @Test("a file written by Python's safetensors loads with the right names, shapes and values")
    func pythonFixture() throws {
        let loaded = Dictionary(uniqueKeysWithValues: try SafeTensors.read(from: IOTests.fixtures.appendingPathComponent("python_tensors.safetensors")).map { ($0.name, $0.tensor) })
        #expect(Set(loaded.keys) == ["weight", "bias", "scalar", "steps", "half", "double", "mask"])
        #expect(loaded["weight"]!.shape == [2, 3] && loaded["weight"]!.toArray() == [0, 0.25, 0.5, 0.75, 1, 1.25])
        #expect(loaded["bias"]!.toArray() == [-1.5, 2.25])
        #expect(loaded["scalar"]!.shape == [] && loaded["scalar"]!.item() == 3.5)
        #expect(loaded["steps"]!.dtype == .int64 && loaded["steps"]!.toInt64Array() == [1, -2, Int64(Int32.max)])
        #expect(loaded["half"]!.dtype == .float16 && loaded["half"]!.toArray() == [0.5, -2, 65504])
        #expect(loaded["double"]!.shape == [2, 1] && loaded["double"]!.toArray() == [1e-3, 2.5])
        #expect(loaded["mask"]!.dtype == .bool && loaded["mask"]!.toBoolArray() == [true, false, true])
        #expect(try SafeTensors.metadata(from: IOTests.fixtures.appendingPathComponent("python_tensors.safetensors")) == ["source": "make_fixtures.py"])
    }

    @Test("a PyTorch-layout state dict loads into the equivalent Ember model and gives the same outputs", arguments: TestDevices.all)
    func pytorchStateDict(_ d: Device) throws {
        let model = Sequential(Linear(4, 3), ReLU(), Linear(3, 2)).to(d)
        try model.load(from: IOTests.fixtures.appendingPathComponent("mlp_state.safetensors"))
        let io = Dictionary(uniqueKeysWithValues: try SafeTensors.read(from: IOTests.fixtures.appendingPathComponent("mlp_io.safetensors")).map { ($0.name, $0.tensor) })
        expectClose(model(io["input"]!.to(d)).toArray(), io["expected"]!.toArray(), rtol: 1e-5, atol: 1e-6)
        #expect(model.parameters().allSatisfy { $0.device == d && $0.requiresGrad })
        // And back: what Ember saves carries the same names and values.
        let url = temporaryFolder().appendingPathComponent("saved.safetensors")
        try model.save(to: url)
        let saved = try SafeTensors.read(from: url)
        let original = try SafeTensors.read(from: IOTests.fixtures.appendingPathComponent("mlp_state.safetensors"))
        #expect(saved.map(\.name).sorted() == original.map(\.name).sorted())
        for (name, tensor) in original {
            #expect(saved.first { $0.name == name }!.tensor.toArray() == tensor.toArray())
        }
    }

    @Test("module and optimizer checkpoints round-trip")
    func moduleRoundTrip() throws {
        let folder = temporaryFolder()
        let net = TinyNet()
        let opt = SGD(net.parameters(), lr: 0.1, momentum: 0.9)
        let x = Tensor.randn([4, 3])
        (net(x) * net(x)).sum().backward()
        opt.step()
        try net.save(to: folder.appendingPathComponent("net.safetensors"))
        try opt.save(to: folder.appendingPathComponent("opt.safetensors"))
        let other = TinyNet()
        let otherOpt = SGD(other.parameters(), lr: 0.5, momentum: 0.9)
        try other.load(from: folder.appendingPathComponent("net.safetensors"))
        try otherOpt.load(from: folder.appendingPathComponent("opt.safetensors"))
        for ((n1, t1), (n2, t2)) in zip(net.stateDict(), other.stateDict()) {
            #expect(n1 == n2 && t1.toArray() == t2.toArray())
        }
        #expect(otherOpt.lr == 0.1 && otherOpt.steps == opt.steps && opt.steps.allSatisfy { $0 == 1 })
        #expect(otherOpt.stateDict().map(\.name) == opt.stateDict().map(\.name))
        net.eval(); other.eval()
        #expect(net(x).toArray() == other(x).toArray())
    }

    @Test("mismatched state dicts throw one error listing every problem and change nothing")
    func strictKeys() throws {
        let model = Sequential(Linear(4, 3), ReLU(), Linear(3, 2))
        let before = model.stateDict().map { $0.tensor.toArray() }
        let dict: StateDict = ["0.weight": Tensor.zeros([3, 4]), "0.bias": Tensor.zeros([5]), "extra": Tensor.zeros([1])]
        #expect(throws: EmberError.stateDictMismatch(missing: ["2.bias", "2.weight"], unexpected: ["extra"],
                                                     shapeMismatches: ["0.bias: expected [3], got [5]"])) {
            try model.loadStateDict(dict)
        }
        #expect(model.stateDict().map { $0.tensor.toArray() } == before)
        #expect(throws: EmberError.self) { try model.loadStateDict(["0.weight": Tensor.zeros([3, 4])], strict: true) }
        try model.loadStateDict(["0.weight": Tensor.zeros([3, 4])], strict: false)
        #expect(model.stateDict()[0].tensor.toArray().allSatisfy { $0 == 0 })
    }

    @Test("corrupt and truncated safetensors files throw precise errors")
    func corruptFiles() throws {
        let folder = temporaryFolder()
        func file(header: String, payload: Int = 0, declaredLength: UInt64? = nil) -> Data {
            var out = Data()
            withUnsafeBytes(of: (declaredLength ?? UInt64(header.utf8.count)).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: Array(header.utf8))
            out.append(contentsOf: [UInt8](repeating: 0, count: payload))
            return out
        }
        let cases: [(String, Data, String)] = [
            ("tiny", Data([1, 2]), "too short"),
            ("length", file(header: "{}", declaredLength: 1 << 40), "header length"),
            ("json", file(header: "{not json"), "header is not valid JSON: expected a string key at byte 1"),
            ("array", file(header: "[]"), "header is not a JSON object but an array"),
            ("entry", file(header: #"{"a":{"dtype":"F32"}}"#), "malformed entry"),
            ("dtype", file(header: #"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, payload: 8), "unsupported dtype"),
            ("range", file(header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, payload: 8), "outside the 8-byte data area"),
            ("count", file(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, payload: 8), "needs 12 bytes"),
            ("overlap", file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, payload: 8), "overlap"),
            ("shape", file(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#), "shape holds -1, not a non-negative integer"),
            ("bool-shape", file(header: #"{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, payload: 4), "shape holds a boolean, not a non-negative integer"),
            ("float-offset", file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}"#, payload: 4), "data_offsets holds 4.0, not a non-negative integer"),
            ("duplicate", file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, payload: 8), "the header names 'a' twice"),
            ("metadata", file(header: #"{"__metadata__":{"n":1},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, payload: 4), "__metadata__ 'n' is a number, not a string"),
            ("gap", file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, payload: 8), "starts at data byte 4, leaving a gap after byte 0"),
            ("trailing", file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, payload: 8), "the data area has 8 bytes, the tensors cover 4"),
            ("pair", file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, payload: 4), "data_offsets [0] is not a [begin, end] pair"),
        ]
        for (name, bytes, message) in cases {
            let url = folder.appendingPathComponent(name)
            try bytes.write(to: url)
            do {
                _ = try SafeTensors.read(from: url)
                Issue.record("\(name) did not throw")
            } catch let error as EmberError {
                #expect(error.description.contains(url.path) && error.description.contains(message), "\(error)")
            }
        }
        // A valid file cut short loses its data area.
        let good = folder.appendingPathComponent("good.safetensors")
        try SafeTensors.write(["w": Tensor.ones([16])], to: good)
        let truncated = folder.appendingPathComponent("truncated.safetensors")
        try Data(try Data(contentsOf: good).dropLast(5)).write(to: truncated)
        #expect(throws: EmberError.self) { try SafeTensors.read(from: truncated) }
    }
}

extension IOTests {
    @Test("names are compared byte for byte: NFC and NFD spellings are two tensors")
    func namesAreBytes() throws {
        let url = temporaryFolder().appendingPathComponent("names.safetensors")
        let nfc = "caf\u{e9}", nfd = "cafe\u{301}"
        try SafeTensors.write(StateDict([(nfc, Tensor([1])), (nfd, Tensor([2]))]), to: url)
        let back = try SafeTensors.read(from: url)
        #expect(back.count == 2)
        #expect(back[nfc]?.toArray() == [1] && back[nfd]?.toArray() == [2])
        #expect(back.map { Array($0.name.utf8) } == [Array(nfc.utf8), Array(nfd.utf8)])
    }

    @Test("a missing file throws EmberError from every reader")
    func missingFile() throws {
        let url = temporaryFolder().appendingPathComponent("missing.safetensors")
        let error = EmberError.invalidFile(path: url.path, reason: "cannot be read: No such file or directory")
        #expect(throws: error) { try SafeTensors.metadata(from: url) }
        #expect(throws: error) { try SafeTensors.read(from: url) }
        #expect(throws: error) { try Linear(2, 2).load(from: url) }
    }

    /// Where the memory test writes the file its child process reads, named by the test
    /// process's id (exit tests capture nothing; the child passes its parent's).
    static func loadPath(_ testProcess: pid_t) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("ember-load-\(testProcess).safetensors")
    }

    @Test("loading a 64 MiB safetensors file peaks at most 1.2x its size above the baseline")
    func loadMemory() async throws {
        try SafeTensors.write(["a": Tensor.ones([12 << 20]), "b": Tensor.full([4 << 20], 2)], to: IOTests.loadPath(getpid()))
        defer { try? FileManager.default.removeItem(at: IOTests.loadPath(getpid())) }
        await #expect(processExitsWith: .success) {
            // Resets the peak (VmHWM) to the current resident size.
            try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
            let baseline = processMemory("VmRSS")
            let loaded = try! SafeTensors.read(from: IOTests.loadPath(getppid()))
            let peak = processMemory("VmHWM") - baseline
            precondition(loaded["a"]!.count == 12 << 20 && loaded["b"]!.sum().item() == Float(8 << 20))
            precondition(Double(peak) <= 1.2 * Double(64 << 20), "loading 64 MiB peaked \(peak) bytes above the baseline")
        }
    }

    /// Where the interrupted-save test's child process writes (fixed: exit tests capture nothing).
    static let interruptedPath = FileManager.default.temporaryDirectory.appendingPathComponent("ember-interrupted-save.safetensors")

    @Test("a save killed mid-write leaves the previous checkpoint intact")
    func interruptedSave() async throws {
        let url = IOTests.interruptedPath
        let original = Tensor.arange(0, 1000)
        try SafeTensors.write(["w": original], to: url)
        // The child rewrites the file with 16 MB checkpoints until a timer kills it (SIGALRM's
        // default action) in the middle of one.
        await #expect(processExitsWith: .failure) {
            let big = Tensor.ones([4 << 20])
            var timer = itimerval(it_interval: timeval(), it_value: timeval(tv_sec: 0, tv_usec: 150_000))
            setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &timer, nil)
            while true { try? SafeTensors.write(["w": big], to: IOTests.interruptedPath) }
        }
        let loaded = try SafeTensors.read(from: url)
        let values = loaded[0].tensor.toArray()
        #expect(loaded.map(\.name) == ["w"])
        #expect(values == original.toArray() || (values.count == 4 << 20 && values.allSatisfy { $0 == 1 }))
        let folder = url.deletingLastPathComponent().path
        // Temporary files of the killed writer may remain; the checkpoint itself is whole.
        for leftover in try FileManager.default.contentsOfDirectory(atPath: folder) where leftover.hasPrefix(".ember-interrupted-save.safetensors.") {
            try? FileManager.default.removeItem(atPath: folder + "/" + leftover)
        }
        try FileManager.default.removeItem(at: url)
    }
}
