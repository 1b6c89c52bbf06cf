import CPUKernels
import Foundation
import Testing
@testable import Ember

@Suite("Devices")
struct DeviceTests {
    @Test("the CPU comes first and every OpenCL device is listed")
    func discovery() throws {
        let devices = Device.available
        #expect(devices.first == .cpu)
        let openCL = (try? OpenCLBackend.enumerateDevices()) ?? []
        #expect(devices.count == 1 + openCL.count)
        let cpu = Device.cpu.info
        #expect(cpu.computeUnits >= 1 && cpu.globalMemoryBytes > 0 && !cpu.name.isEmpty)
        for device in devices.dropFirst() {
            let info = device.info
            #expect(!info.name.isEmpty && !info.vendor.isEmpty && !info.platform.isEmpty)
            #expect(info.computeUnits >= 1 && info.globalMemoryBytes > 0 && info.maxWorkGroupSize >= 1)
        }
    }

    @Test("EMBER_DEVICE values parse")
    func parsing() throws {
        #expect(try Device.parse("cpu") == .cpu)
        #expect(try Device.parse(" CPU ") == .cpu)
        if TestDevices.openCL != nil {
            #expect(try Device.parse("opencl") == Device.opencl())
            #expect(try Device.parse("opencl:0") == Device.opencl(index: 0))
        }
        #expect(throws: EmberError.invalidDeviceSpec("tpu")) { try Device.parse("tpu") }
        #expect(throws: EmberError.invalidDeviceSpec("opencl:-1")) { try Device.parse("opencl:-1") }
        #expect(throws: EmberError.invalidDeviceSpec("opencl:x")) { try Device.parse("opencl:x") }
    }

    @Test("a device index that does not exist throws a typed error")
    func missingIndex() {
        let count = (try? OpenCLBackend.enumerateDevices().count) ?? 0
        #expect(throws: EmberError.self) { try Device.opencl(index: count + 5) }
        if count > 0 {
            #expect(throws: EmberError.deviceIndexOutOfRange(index: count + 5, available: count)) { try Device.opencl(index: count + 5) }
        }
        // The CPU stays usable afterwards.
        #expect((Tensor([1, 2]) + 1).toArray() == [2, 3])
    }

    @Test("EMBER_DEVICE selects the default device")
    func defaultDevice() async {
        await #expect(processExitsWith: .success) {
            setenv("EMBER_DEVICE", "cpu", 1)
            precondition(Device.default == .cpu)
            setenv("EMBER_DEVICE", "opencl:0", 1)
            if (try? Device.opencl()) != nil { precondition(Device.default == (try! Device.opencl(index: 0))) }
            unsetenv("EMBER_DEVICE")
            let expected = (try? Device.opencl()) ?? .cpu
            precondition(Device.default == expected)
        }
    }

    @Test("an unusable EMBER_DEVICE stops with a message naming it")
    func badDefault() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            setenv("EMBER_DEVICE", "quantum:3", 1)
            _ = Device.default
        }.map { result in
            let text = stderrText(result)
            #expect(text.contains("EMBER_DEVICE=quantum:3"))
            #expect(text.contains("expected cpu, opencl or opencl:N"))
        }
    }

    @Test("the CPU softmax kernel of every instruction set this CPU has matches a Double reference")
    func softmaxKernels() {
        // Row lengths around every vector width, so whole vectors and scalar tails both run;
        // values include NaN, infinities and inputs that underflow exp.
        let lengths = [1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1024]
        for isa in (0...ember_cpu_isa().rawValue).map({ ember_isa(rawValue: $0) }) {
            for cols in lengths {
                var values = Tensor.withRandomSeed(UInt64(cols)) { Tensor.randn([3, cols]).toArray().map { $0 * 30 } }
                values[0] = -200  // underflows to 0 after the shift
                values[cols] = .infinity  // row 1: infinite maximum, not shifted
                if cols > 2 { values[2 * cols + 2] = .nan }  // row 2: NaN ignored by the max, propagated by exp
                for log in [false, true] {
                    var out = [Float](repeating: 0, count: values.count)
                    ember_softmax_rows_isa(isa, values, &out, 3, cols, log ? 1 : 0)
                    for r in 0..<3 {
                        let row = values[r * cols..<(r + 1) * cols].map(Double.init)
                        let finite = row.filter { !$0.isNaN }.max() ?? 0
                        let shift = finite.isFinite ? finite : 0
                        let total = row.map { Foundation.exp($0 - shift) }.reduce(0, +)
                        for j in 0..<cols {
                            let got = out[r * cols + j], x = row[j]
                            let context = "isa \(isa.rawValue), cols \(cols), log \(log), row \(r), column \(j)"
                            if x.isNaN || total.isNaN {
                                #expect(got.isNaN, "\(context)")
                            } else if x.isInfinite || total.isInfinite {
                                #expect(!got.isFinite || got == 0, "\(context): \(got)")
                            } else {
                                // Softmax: the polynomial's 2e-7 relative error plus the sum's rounding.
                                // Log-softmax: x - lse in Float rounds at the scale of |lse| and the result.
                                let lse = shift + Foundation.log(total)
                                let expected = log ? x - lse : Foundation.exp(x - shift) / total
                                let tolerance = log ? 2 * Double(Float.ulpOfOne) * (Swift.abs(lse) + Swift.abs(expected)) + 1e-6
                                                    : 2e-6 * Swift.abs(expected) + 1e-7
                                #expect(Swift.abs(Double(got) - expected) <= tolerance, "\(context): \(got) vs \(expected)")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("an OpenCL device measures both GEMMs once, keeps the faster and caches the choice")
    func gemmChoiceIsMeasuredAndCached() async {
        await #expect(processExitsWith: .success) {
            guard let gpu = TestDevices.openCL else { return }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ember-gemm-\(getpid())")
            setenv("EMBER_CACHE_DIR", directory.path, 1)
            defer { try? FileManager.default.removeItem(at: directory) }
            let choice = gpu.gemmChoice!
            let ember = choice.emberGFLOPS ?? 0, clblast = choice.clblastGFLOPS ?? 0
            precondition(choice.source == "measured" && (ember > 0 || clblast > 0), "\(choice)")
            precondition(choice.implementation == (ember >= clblast ? .ember : .clblast), "\(choice)")
            precondition(gpu.gemmChoice == choice, "asked twice, measured twice")
            let cached = GEMMChoice.cached(key: (gpu.backend as! OpenCLBackend).gemmCacheKey)
            precondition(cached?.implementation == choice.implementation && cached?.source == "cached"
                         && cached?.emberGFLOPS == choice.emberGFLOPS, "cache holds \(String(describing: cached))")
        }
    }

    @Test("the GEMM measurement leaves an earlier command's error to its caller")
    func gemmChoiceKeepsPendingErrors() async {
        await #expect(processExitsWith: .success) {
            guard let gpu = TestDevices.openCL else { return }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ember-gemm-pending-\(getpid())")
            setenv("EMBER_CACHE_DIR", directory.path, 1)
            defer { try? FileManager.default.removeItem(at: directory) }
            (gpu.backend as! OpenCLBackend).record(status: -5, "clEnqueueNDRangeKernel(injected)")
            let first = gpu.gemmChoice!
            precondition(first.source == "device type", "measured over a pending error: \(first)")
            do {
                try gpu.synchronize()
                preconditionFailure("the pending error was lost")
            } catch let error as EmberError {
                precondition(error == .openCL(call: "clEnqueueNDRangeKernel(injected)", code: -5), "\(error)")
            } catch {
                preconditionFailure("\(error)")
            }
            precondition(gpu.gemmChoice?.source == "measured", "not measured once the error was taken")
        }
    }

    /// Checks a batched product with transposed operands on OpenCL against the CPU, under
    /// whatever `EMBER_GEMM` the calling child process set.
    static func checkForcedGEMM(_ expected: GEMMImplementation) {
        guard let gpu = TestDevices.openCL else { return }
        precondition(gpu.gemmChoice?.implementation == expected && gpu.gemmChoice?.source == "EMBER_GEMM")
        let a = Tensor.withRandomSeed(3) { Tensor.randn([3, 40, 70]) }, b = Tensor.withRandomSeed(4) { Tensor.randn([50, 40]) }
        let want = a.transpose(1, 2).matmul(b.T).toArray()
        let got = a.to(gpu).transpose(1, 2).matmul(b.to(gpu).T).toArray()
        precondition(isClose(got, want, rtol: 1e-4, atol: 1e-4), "\(expected) differs from the CPU")
    }

    @Test("EMBER_GEMM forces either GEMM, and both compute the CPU's products")
    func forcedGEMM() async {
        await #expect(processExitsWith: .success) {
            setenv("EMBER_GEMM", "ember", 1)
            DeviceTests.checkForcedGEMM(.ember)
        }
        await #expect(processExitsWith: .success) {
            setenv("EMBER_GEMM", "CLBlast", 1)
            DeviceTests.checkForcedGEMM(.clblast)
        }
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            setenv("EMBER_GEMM", "cublas", 1)
            _ = GEMMChoice.forced()
        }.map { result in
            #expect(stderrText(result).contains("EMBER_GEMM=cublas: expected ember or clblast"))
        }
    }

    @Test("error descriptions say what is missing and how to fix it")
    func errorText() {
        #expect(EmberError.noOpenCLPlatform("ICD loader found none").description.contains("apt-get install pocl-opencl-icd"))
        #expect(EmberError.deviceIndexOutOfRange(index: 3, available: 1).description.contains("1 device(s)"))
        #expect(EmberError.outOfMemory(device: "opencl:0", bytes: 10).description.contains("10 bytes"))
    }
}

/// Programmer errors stop the program with a message naming the op and the shapes.
@Suite("Error messages")
struct ErrorMessageTests {
    @Test("matmul names both shapes and the inner dimensions")
    func matmulShapes() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).matmul(Tensor.zeros([4, 5]))
        }
        #expect(stderrText(result).contains("matmul: [2, 3] x [4, 5]: inner dimensions 3 and 4 differ"))
    }

    @Test("broadcasting names the op and both shapes")
    func broadcastShapes() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]) + Tensor.zeros([4])
        }
        #expect(stderrText(result).contains("add: shapes [2, 3] and [4] cannot be broadcast together"))
    }

    @Test("reshape names the requested and actual shapes")
    func reshapeShapes() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).reshape([4, 2])
        }
        #expect(stderrText(result).contains("reshape: shape [4, 2] is invalid for input of shape [2, 3] (6 elements)"))
    }

    @Test("mixing devices names both devices")
    func deviceMismatch() async {
        guard TestDevices.openCL != nil else { return }
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2]) * Tensor.zeros([2], device: try! Device.opencl())
        }
        #expect(stderrText(result).contains("mul: expected all tensors on the same device, got cpu and opencl:0"))
    }

    @Test("an index out of range names the index and the size")
    func indexOutOfRange() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([3, 2])[3]
        }
        #expect(stderrText(result).contains("index 3 is out of bounds for dimension 0 with size 3"))
    }

    @Test("conv2d names the channel mismatch")
    func convChannels() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([1, 3, 8, 8]).conv2d(weight: Tensor.zeros([4, 2, 3, 3]))
        }
        #expect(stderrText(result).contains(
            "conv2d: given groups=1, weight of size [4, 2, 3, 3], expected input [1, 3, 8, 8] to have 2 channels, but got 3 channels instead"))
    }

    @Test("gather names an out-of-range index")
    func gatherIndex() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).gather(dim: 1, index: Tensor([[0], [3]], dtype: .int32))
        }
        #expect(stderrText(result).contains("gather: index 3 is out of bounds for dimension of size 3"))
    }

    @Test("a nested array with ragged rows is rejected")
    func ragged() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor([[1, 2], [3]])
        }
        #expect(stderrText(result).contains("ragged nested array"))
    }
}

/// Device faults throw typed errors and leave the CPU usable.
@Suite("Device faults")
struct DeviceFaultTests {
    @Test("a kernel that fails to build throws with the build log")
    func buildFailure() throws {
        guard TestDevices.openCL != nil else { return }
        let backend = try DeviceRegistry.shared.openCLBackend(index: 0)
        do {
            _ = try backend.build(name: "broken.cl", source: "__kernel void broken(__global float* x) { x[0] = undefined_name; }")
            Issue.record("the broken program built")
        } catch let EmberError.kernelBuildFailed(program, log) {
            #expect(program == "broken.cl")
            #expect(log.contains("undefined_name"))
        }
        #expect((Tensor([1, 2], device: try Device.opencl()) * 2).toArray() == [2, 4])
    }

    @Test("an allocation larger than the device throws outOfMemory")
    func outOfMemory() throws {
        for device in TestDevices.all {
            #expect(throws: EmberError.outOfMemory(device: device.description, bytes: 1 << 50)) {
                _ = try device.backend.allocate(bytes: 1 << 50)
            }
        }
        #expect((Tensor([1, 2]) + 1).toArray() == [2, 3])
    }

    @Test("without an OpenCL platform: a typed error, the CPU as the only device, and the CPU still works")
    func noPlatform() async {
        await #expect(processExitsWith: .success) {
            // The ICD loader reads its vendor list from here; an empty folder means no platform.
            let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-icd-\(getpid())")
            try? FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: empty) }
            setenv("OCL_ICD_VENDORS", empty.path, 1)
            do {
                _ = try Device.opencl()
                fatalError("Device.opencl() succeeded without a platform")
            } catch let error as EmberError {
                guard case .noOpenCLPlatform = error else { fatalError("unexpected error \(error)") }
                precondition(error.description.contains("apt-get install pocl-opencl-icd"))
            } catch {
                fatalError("untyped error \(error)")
            }
            precondition(Device.available == [.cpu])
            precondition(Device.default == .cpu)
            precondition((Tensor([1, 2]) * 3).toArray() == [3, 6])
        }
    }
}

/// Bad arguments to public entry points stop with a message naming the argument and value.
@Suite("Argument checks")
struct ArgumentCheckTests {
    @Test("a value count that does not fill the shape")
    func countMismatch() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor(shape: [2, 3], data: [1, 2, 3])
        }
        #expect(stderrText(result).contains("Tensor: 3 values do not fill shape [2, 3] (6 elements)"))
    }

    @Test("a negative dimension")
    func negativeSize() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, -1])
        }
        #expect(stderrText(result).contains("zeros: invalid shape [2, -1]: dimensions must be >= 0"))
    }

    @Test("a slice step that is not positive")
    func sliceStep() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([4, 2])[TensorRange(0, 4, step: 0)]
        }
        #expect(stderrText(result).contains("slice: step must be positive, got 0"))
    }

    @Test("a zero pooling kernel")
    func poolKernel() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([1, 1, 4, 4]).maxPool2d(kernel: 0)
        }
        #expect(stderrText(result).contains("maxPool2d: kernel size must be positive, got (0, 0)"))
    }

    @Test("a zero DataLoader batch size")
    func batchSize() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = DataLoader(TensorDataset(inputs: Tensor.zeros([4, 1]), labels: Tensor.zeros([4])), batchSize: 0)
        }
        #expect(stderrText(result).contains("DataLoader: batchSize must be positive, got 0"))
    }

    @Test("a NaN learning rate")
    func nanRate() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = SGD([Tensor.zeros([1], requiresGrad: true)], lr: .nan)
        }
        #expect(stderrText(result).contains("SGD: lr must be a finite number >= 0, got nan"))
    }
}

extension DeviceTests {
    @Test("on a CPU with AVX2 or AVX-512, OpenBLAS does not run its generic fallback kernels")
    func blasKernels() {
        guard let core = CPUBackend.blasCore else { return }  // the BLAS is not OpenBLAS
        if ember_cpu_isa() != EMBER_ISA_SCALAR && ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil {
            #expect(!core.hasPrefix("Prescott"), "OpenBLAS runs \(core)")
        }
    }
}
