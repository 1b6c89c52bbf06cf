import Foundation
import Testing
@testable import Ember

/// `Tensor.autocast`: which type each op computes in inside and outside a scope, nesting, the
/// gradients that reach Float32 parameters, and training under bfloat16; `Module.to(dtype)`.
@Suite("Autocast")
struct AutocastTests {
    @Test("inside a scope matmul, linear, conv2d and attention run in its type; softmax, losses, norms, sums and exponentials in Float32", arguments: TestDevices.all)
    func opTypes(_ device: Device) {
        let x = Tensor.randn([4, 8], device: device), w = Tensor.randn([3, 8], device: device)
        let image = Tensor.randn([2, 3, 6, 6], device: device), filters = Tensor.randn([4, 3, 3, 3], device: device)
        let q = Tensor.randn([2, 5, 8], device: device)
        let layer = Linear(8, 3).to(device), conv = Conv2d(3, 4, kernelSize: 3).to(device)
        let labels = Tensor(shape: [4], data: [Int32(0), 1, 2, 0], device: device)
        for type in [DType.bfloat16, .float16] {
            Tensor.autocast(type) {
                #expect(Tensor.autocastType == type)
                let narrow = x.matmul(w.T)
                #expect(narrow.dtype == type)
                #expect(linear(x, weight: w, bias: Tensor.zeros([3], device: device)).dtype == type)
                #expect(layer(x).dtype == type)
                #expect(image.conv2d(weight: filters, padding: 1).dtype == type && conv(image).dtype == type)
                #expect(scaledDotProductAttention(query: q, key: q, value: q, isCausal: true).dtype == type)
                // Batched (bmm-style) products too.
                #expect(q.matmul(q.transpose(1, 2)).dtype == type)
                for wide in [narrow.softmax(dim: 1), narrow.logSoftmax(dim: 1), crossEntropy(narrow, labels),
                             mseLoss(narrow, narrow.detach()), layerNorm(narrow, normalizedShape: [3]), narrow.sum(), narrow.mean(dim: 0),
                             narrow.exp(), narrow.abs().log(), narrow.pow(3), narrow.logSumExp(dim: 1), narrow.cumsum(dim: 1),
                             batchNorm(narrow, runningMean: nil, runningVar: nil, training: true)] {
                    #expect(wide.dtype == .float32)
                }
                // Other ops keep their input's type; mixed operands promote.
                #expect(narrow.relu().dtype == type && (narrow * 2).dtype == type)
                #expect((narrow + x.matmul(w.T).float()).dtype == .float32)
                // Integer operands are left alone.
                #expect(crossEntropy(x, labels).dtype == .float32)
            }
        }
        #expect(Tensor.autocastType == nil)
        #expect(x.matmul(w.T).dtype == .float32 && layer(x).dtype == .float32)
        // Outside a scope a narrow input keeps its type through every op.
        let narrow = x.bfloat16()
        #expect(narrow.softmax(dim: 1).dtype == .bfloat16 && narrow.sum().dtype == .bfloat16 && narrow.exp().dtype == .bfloat16)
    }

    @Test("an autocast product equals the product of the inputs rounded to the narrow type", arguments: TestDevices.all)
    func values(_ device: Device) {
        let a = Tensor.randn([16, 32], device: device), b = Tensor.randn([32, 8], device: device)
        let inside = Tensor.autocast(.bfloat16) { a.matmul(b) }
        let reference = a.bfloat16().matmul(b.bfloat16())
        #expect(inside.toArray() == reference.toArray())
        // And it is within bfloat16's precision of the Float32 product.
        expectClose(inside.toArray(), a.matmul(b).toArray(), rtol: 2e-2, atol: 0.1, "bfloat16 matmul on \(device)")
    }

    @Test("scopes nest, enabled: false turns autocast off inside, and each scope restores the outer state")
    func nesting() {
        let a = Tensor.randn([2, 2]), b = Tensor.randn([2, 2])
        Tensor.autocast(.bfloat16) {
            #expect(a.matmul(b).dtype == .bfloat16)
            Tensor.autocast(.float16) { #expect(a.matmul(b).dtype == .float16 && Tensor.autocastType == .float16) }
            #expect(a.matmul(b).dtype == .bfloat16)
            Tensor.autocast(.float16, enabled: false) {
                #expect(a.matmul(b).dtype == .float32 && Tensor.autocastType == nil)
                Tensor.autocast(.bfloat16) { #expect(a.matmul(b).dtype == .bfloat16) }
                #expect(Tensor.autocastType == nil)
            }
            #expect(Tensor.autocastType == .bfloat16)
        }
        #expect(Tensor.autocastType == nil && a.matmul(b).dtype == .float32)
        // A disabled scope outside any other is plain Float32.
        #expect(Tensor.autocast(.bfloat16, enabled: false) { a.matmul(b) }.dtype == .float32)
        // A throwing body restores the state too.
        struct Stop: Error {}
        #expect(throws: Stop.self) { try Tensor.autocast(.bfloat16) { throw Stop() } }
        #expect(Tensor.autocastType == nil)
    }

    @Test("the scope is per task and per thread: another thread does not see it")
    func perThread() {
        let a = Tensor.randn([2, 2])
        Tensor.autocast(.bfloat16) {
            nonisolated(unsafe) var seen: (DType?, DType)?
            let done = DispatchSemaphore(value: 0)
            Thread {
                seen = (Tensor.autocastType, a.matmul(a).dtype)
                done.signal()
            }.start()
            done.wait()
            #expect(seen?.0 == nil && seen?.1 == .float32)
            #expect(a.matmul(a).dtype == .bfloat16)
        }
    }

    @Test("a dtype other than bfloat16 or float16 stops with a message")
    func invalidType() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            Tensor.autocast(.float32) {}
        }.map { result in
            #expect(stderrText(result).contains("autocast: dtype must be .bfloat16 or .float16, got float32"))
        }
    }

    @Test("gradients reach Float32 parameters as Float32 and match Float32 training within bfloat16's precision", arguments: TestDevices.all)
    func gradients(_ device: Device) {
        Tensor.withRandomSeed(3) {
            let model = Sequential(Linear(16, 32), ReLU(), Linear(32, 4)).to(device)
            let x = Tensor.randn([8, 16], device: device), y = Tensor.randint(0, 4, [8], device: device)
            crossEntropy(model(x), y).backward()
            let reference = model.parameters().map { $0.grad!.toArray() }
            model.zeroGrad()
            let loss = Tensor.autocast(.bfloat16) { crossEntropy(model(x), y) }
            #expect(loss.dtype == .float32)
            loss.backward()
            for (p, expected) in zip(model.parameters(), reference) {
                #expect(p.dtype == .float32 && p.grad?.dtype == .float32)
                let g = p.grad!.toArray()
                let error = zip(g, expected).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
                let norm = expected.map { $0 * $0 }.reduce(0, +).squareRoot()
                #expect(error <= 0.03 * norm, "gradient of shape \(p.shape) on \(device): relative error \(error / norm)")
            }
        }
    }

    @Test("backward runs each op in its forward's types, also when called inside a scope")
    func backwardInsideScope() {
        // GELU's backward computes exp: in bfloat16 as its forward did, not in Float32 as
        // `exp` under autocast would, so both places give the same bits.
        let x = Tensor.randn([256]).bfloat16().detach().requiresGrad(true)
        func gradient(backwardInside: Bool) -> [Float] {
            x.zeroGrad()
            let y = Tensor.autocast(.bfloat16) { x.gelu() * 3 }
            let seed = Tensor.ones([256], dtype: .bfloat16)
            if backwardInside { Tensor.autocast(.bfloat16) { y.backward(gradient: seed) } } else { y.backward(gradient: seed) }
            return x.grad!.toArray()
        }
        let inside = gradient(backwardInside: true), outside = gradient(backwardInside: false)
        #expect(zip(inside, outside).filter { $0 != $1 }.count == 0, "of \(inside.count) gradients")
        #expect(x.grad?.dtype == .bfloat16)
    }

    @Test("a gradient has the dtype of the tensor it flows to")
    func gradientTypes() {
        let a = Tensor.randn([4, 3]).bfloat16().detach().requiresGrad(true)
        let b = Tensor.zeros([3], dtype: .bfloat16, requiresGrad: true)
        let w = Tensor.randn([3, 3], requiresGrad: true)
        // ReLU's backward multiplies by a Float32 mask; the engine converts the result back.
        Tensor.autocast(.bfloat16) { (a * b + a).relu().matmul(w).sum() }.backward()
        #expect(a.grad?.dtype == .bfloat16 && b.grad?.dtype == .bfloat16 && w.grad?.dtype == .float32)
    }

    /// Trains the digits MLP for `epochs` epochs (SGD lr 0.1, momentum 0.9, batch 64, seed 0)
    /// with the forward pass and loss under `precision` (nil: Float32); returns each epoch's mean loss.
    static func trainDigits(_ device: Device, precision: DType?, scaler: GradScaler? = nil, epochs: Int) throws -> [Float] {
        try Tensor.withRandomSeed(0) {
            let digits = try Digits.load()
            let model = Sequential(Linear(64, 128), ReLU(), Linear(128, 10)).to(device)
            let opt = SGD(model.parameters(), lr: 0.1, momentum: 0.9)
            let loader = DataLoader(digits.train, batchSize: 64, shuffle: true, seed: 0, device: device)
            let scaler = scaler ?? GradScaler(enabled: false)
            return (0..<epochs).map { _ in
                var total: Float = 0, steps = 0
                for (x, y) in loader {
                    let loss = Tensor.autocast(precision ?? .bfloat16, enabled: precision != nil) { crossEntropy(model(x), y) }
                    opt.zeroGrad()
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    total += loss.item()
                    steps += 1
                }
                return total / Float(steps)
            }
        }
    }

    @Test("the digits MLP trained under bfloat16 autocast converges as in Float32", arguments: TestDevices.all)
    func training(_ device: Device) throws {
        let full = try AutocastTests.trainDigits(device, precision: nil, epochs: 3)
        let mixed = try AutocastTests.trainDigits(device, precision: .bfloat16, epochs: 3)
        #expect(mixed.last! < mixed.first! / 3, "bfloat16 on \(device): epoch losses \(mixed)")
        for (f, m) in zip(full, mixed) {
            #expect(Swift.abs(f - m) <= 0.05 + 0.1 * f, "epoch losses on \(device): Float32 \(full), bfloat16 \(mixed)")
        }
    }

    @Test("float16 autocast with a GradScaler trains the digits MLP as in Float32")
    func float16Training() throws {
        let scaler = GradScaler(initScale: 1024, growthInterval: 10)
        let full = try AutocastTests.trainDigits(.cpu, precision: nil, epochs: 3)
        let mixed = try AutocastTests.trainDigits(.cpu, precision: .float16, scaler: scaler, epochs: 3)
        for (f, m) in zip(full, mixed) {
            #expect(Swift.abs(f - m) <= 0.05 + 0.1 * f, "epoch losses: Float32 \(full), float16 \(mixed)")
        }
        // Every step was finite, so the scale doubled every 10 steps.
        let steps = 3 * DataLoader(try Digits.load().train, batchSize: 64).count
        #expect(scaler.scale == 1024 * Float(1 << (steps / 10)), "scale \(scaler.scale) after \(steps) steps")
    }

    @Test("Module.to(dtype) converts float parameters, buffers and gradients in place and keeps every reference", arguments: TestDevices.all)
    func moduleToDType(_ device: Device) {
        final class Net: Module, Layer {
            let fc = Linear(4, 3)
            let norm = BatchNorm1d(3)
            @Buffer var steps = Tensor(shape: [2], data: [Int32(1), 2])
            func callAsFunction(_ x: Tensor) -> Tensor { norm(fc(x)) }
        }
        let net = Net().to(device)
        let weight = net.fc.weight, values = weight.toArray()
        let shared = Sequential(net.fc, net.fc)
        net(Tensor.randn([5, 4], device: device)).sum().backward()
        let opt = SGD(net.parameters(), lr: 0.1)
        net.to(.bfloat16)
        #expect(net.fc.weight === weight && shared.parameters()[0] === weight && opt.parameters[0] === weight)
        #expect(weight.dtype == .bfloat16 && weight.grad?.dtype == .bfloat16 && weight.requiresGrad)
        #expect(net.norm.runningMean?.dtype == .bfloat16 && net.steps.dtype == .int32 && net.steps.toIntArray() == [1, 2])
        #expect(weight.toArray() == Tensor(shape: [3, 4], data: values, device: device).bfloat16().toArray())
        #expect(net(Tensor.randn([5, 4], device: device).bfloat16()).dtype == .bfloat16)
        net.to(.float32)
        #expect(weight.dtype == .float32 && net.fc.weight === weight)
        expectClose(weight.toArray(), values, rtol: 1e-2, atol: 1e-3, "after a round trip through bfloat16")
    }
}
