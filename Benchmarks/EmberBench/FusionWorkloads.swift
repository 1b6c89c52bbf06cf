import Ember
import Foundation

extension Workloads {
    /// Lazy elementwise fusion on OpenCL devices: each workload with fusion on and off
    /// (`Fusion.withElementwiseFusion`), taking turns repetition by repetition, after both have
    /// run and the fused kernels are built; the notes give each side's kernel launches per call.
    /// The optimizer is fused on both sides, so the rows show what the lazy graphs add.
    func fusion(_ device: Device, filter: (String) -> Bool) {
        guard device.kind == .opencl else { return }
        func pair(_ name: String, _ body: () -> Void) {
            guard filter(name + " fusion") else { return }
            for _ in 0..<3 {
                Fusion.withElementwiseFusion(true, body)
                Fusion.withElementwiseFusion(false, body)
            }
            try? device.synchronize()
            device.waitForKernelBuilds()
            func launches(_ fused: Bool) -> Int {
                Fusion.withElementwiseFusion(fused, body)
                try? device.synchronize()
                let before = device.stats.kernelLaunches
                Fusion.withElementwiseFusion(fused, body)
                try? device.synchronize()
                return device.stats.kernelLaunches - before
            }
            let counts = (launches(true), launches(false))
            let timings = timer.timeAlternating(on: device, { Fusion.withElementwiseFusion(true, body) },
                                                { Fusion.withElementwiseFusion(false, body) })
            report("\(name) fusion on", device, timings.a, unit: "ms", higherIsBetter: false, note: "\(counts.0) launches") { $0 * 1e3 }
            report("\(name) fusion off", device, timings.b, unit: "ms", higherIsBetter: false, note: "\(counts.1) launches") { $0 * 1e3 }
        }
        Tensor.manualSeed(0)
        let x = Tensor.randn([1 << 20], device: device).requiresGrad(true), g = Tensor.randn([1 << 20], device: device)
        pair("GELU (tanh) forward+backward 1M") {
            x.grad = nil
            x.gelu(approximate: .tanh).backward(gradient: g)
            _ = x.grad
        }
        let norm = LayerNorm(768).to(device)
        let rows = Tensor.randn([128, 768], device: device).requiresGrad(true), rowsGrad = Tensor.randn([128, 768], device: device)
        pair("LayerNorm forward+backward [128, 768]") {
            rows.grad = nil
            norm.zeroGrad()
            norm(rows).backward(gradient: rowsGrad)
        }
        do {
            Tensor.manualSeed(0)
            let model = BenchModels.mlp784().to(device)
            let opt = SGD(model.parameters(), lr: 0.01, momentum: 0.9)
            let input = Tensor.randn([128, 784], device: device), labels = Tensor.randint(0, 10, [128], device: device)
            pair("MLP 784-512-512-10 step") { trainingStep(model, opt, input, labels) }
        }
        do {
            Tensor.manualSeed(0)
            let model = BenchModels.digitsCNN().to(device)
            let opt = SGD(model.parameters(), lr: 0.01, momentum: 0.9)
            let input = Tensor.randn([64, 1, 28, 28], device: device), labels = Tensor.randint(0, 10, [64], device: device)
            pair("CNN step (64x1x28x28)") { trainingStep(model, opt, input, labels) }
        }
        if filter("GPT step fusion") { pair("GPT step", gptStep(device)) }
    }
}
