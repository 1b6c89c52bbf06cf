import Ember
import Foundation

extension Workloads {
    /// float16 and bfloat16 beside Float32, each pair timed in alternation so their ratio is
    /// meaningful on a loaded machine: elementwise throughput in elements/s, 16-bit matmul
    /// against SGEMM, training steps under bfloat16 autocast, and the peak live bytes of a
    /// bfloat16 model's forward.
    func precision(_ device: Device, filter: (String) -> Bool) {
        let n = 16 * 1024 * 1024
        for dtype in [DType.float16, .bfloat16] {
            for (name, op) in [("add", { (a: Tensor, b: Tensor) in _ = a + b }), ("relu", { a, _ in _ = a.relu() }),
                               ("sum", { a, _ in _ = a.sum() })] as [(String, (Tensor, Tensor) -> Void)] {
                let row = "\(name) 16M \(dtype)"
                guard filter(row) else { continue }
                let a = Tensor.randn([n], device: device), b = Tensor.randn([n], device: device)
                let a16 = a.to(dtype), b16 = b.to(dtype)
                try? device.synchronize()
                let t = timer.timeAlternating(on: device, { op(a16, b16) }, { op(a, b) })
                report(row, device, t.a, unit: "Gelem/s", note: ratioNote(t.b.times.median, t.a.times.median, "float32's elements/s")) {
                    Double(n) / $0 / 1e9
                }
                report("\(name) 16M float32 (beside \(dtype))", device, t.b, unit: "Gelem/s") { Double(n) / $0 / 1e9 }
            }
        }
        for size in quick ? [512] : [1024, 2048] {
            for dtype in [DType.bfloat16, .float16] {
                let row = "matmul N=\(size) \(dtype)"
                guard filter(row) else { continue }
                let a = Tensor.randn([size, size], device: device), b = Tensor.randn([size, size], device: device)
                let a16 = a.to(dtype), b16 = b.to(dtype), flops = 2 * Double(size * size * size)
                try? device.synchronize()
                let t = timer.timeAlternating(on: device, { _ = a16.matmul(b16) }, { _ = a.matmul(b) })
                report(row, device, t.a, unit: "GFLOP/s", note: ratioNote(t.b.times.median, t.a.times.median, "SGEMM's GFLOP/s")) {
                    flops / $0 / 1e9
                }
                report("matmul N=\(size) float32 (beside \(dtype))", device, t.b, unit: "GFLOP/s") { flops / $0 / 1e9 }
            }
        }
        autocastSteps(device, filter: filter)
        if filter("forward peak live bytes bfloat16") {
            // The MLP 784 forward (with its graph) of a Float32 model and of the same model in bfloat16.
            func peak(_ dtype: DType) -> Int {
                Tensor.manualSeed(0)
                let model = BenchModels.mlp784().to(device).to(dtype)
                let x = Tensor.randn([128, 784], device: device).to(dtype)
                try? device.synchronize()
                device.resetPeakMemory()
                let before = device.stats.liveBytes
                let out = model(x)
                try? device.synchronize()
                _ = out
                return device.stats.peakLiveBytes - before
            }
            let full = peak(.float32), narrow = peak(.bfloat16)
            let mib = Double(narrow) / 1_048_576
            report("forward peak live bytes bfloat16 (MLP 784, batch 128)", device, (0, [0]), unit: "MiB", higherIsBetter: false,
                   note: String(format: "Float32 %.2f MiB; %.2fx of Float32", Double(full) / 1_048_576, Double(narrow) / Double(full))) { _ in mib }
        }
    }

    /// The MLP 784, CNN and GPT training steps in Float32 and under `Tensor.autocast(.bfloat16)`
    /// (Float32 weights and optimizer), in alternation.
    private func autocastSteps(_ device: Device, filter: (String) -> Bool) {
        func wanted(_ row: String) -> Bool { filter("\(row) bf16 autocast") || filter("\(row) float32 (beside autocast)") }
        func compare(_ row: String, _ step: () -> Void) {
            guard wanted(row) else { return }
            let t = timer.timeAlternating(on: device, { Tensor.autocast(.bfloat16) { step() } }, step)
            report("\(row) bf16 autocast", device, t.a, unit: "ms/step", higherIsBetter: false,
                   note: ratioNote(t.b.times.median, t.a.times.median, "Float32's speed")) { $0 * 1e3 }
            report("\(row) float32 (beside autocast)", device, t.b, unit: "ms/step", higherIsBetter: false) { $0 * 1e3 }
        }
        Tensor.manualSeed(0)
        let mlp = BenchModels.mlp784().to(device)
        let mlpOpt = SGD(mlp.parameters(), lr: 0.01, momentum: 0.9)
        let x = Tensor.randn([128, 784], device: device), y = Tensor.randint(0, 10, [128], device: device)
        compare("MLP 784-512-512-10 step") { trainingStep(mlp, mlpOpt, x, y) }
        let cnn = BenchModels.digitsCNN().to(device)
        let cnnOpt = SGD(cnn.parameters(), lr: 0.01, momentum: 0.9)
        let images = Tensor.randn([64, 1, 28, 28], device: device), labels = Tensor.randint(0, 10, [64], device: device)
        compare("CNN step (64x1x28x28)") { trainingStep(cnn, cnnOpt, images, labels) }
        let gpt = "GPT step (nanoGPT shakespeare_char CPU config)"
        if wanted(gpt) { compare(gpt, gptStep(device)) }
    }

    /// How many times faster than `reference` seconds `measured` seconds are, as "N.NNx <what>".
    private func ratioNote(_ reference: Double, _ measured: Double, _ what: String) -> String {
        String(format: "%.2fx %@", reference / measured, what)
    }
}
