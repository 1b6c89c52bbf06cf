import CPUKernels
import Foundation
import Testing
@testable import Ember

/// The vectorisable exp and erf of the CPU loops (and of OpenCL's math.cl) against Double results.
@Suite("VectorMath: exp and erf within their stated ulp bounds")
struct VectorMathTests {
    /// The largest error of `f` over `inputs`, in units of the last place of the correctly
    /// rounded result.
    private func worstUlps(_ inputs: [Float], _ f: (Float) -> Float, _ reference: (Double) -> Double) -> (ulps: Double, at: Float) {
        var worst = (ulps: 0.0, at: Float(0))
        for x in inputs {
            let exact = reference(Double(x))
            let ulp = Double(Float(exact).magnitude.ulp)
            let error = Swift.abs(Double(f(x)) - exact) / ulp
            if error > worst.ulps { worst = (error, x) }
        }
        return worst
    }

    @Test("erf is within 2.5 ulp from 1e-30 to 6 and odd, with its limits")
    func erf() {
        let dense = stride(from: Float(-6), through: 6, by: 1.0 / 4096).map { $0 }
        let small = (0...300).map { Float(Foundation.pow(10, -30 + Double($0) / 10)) }
        let worst = worstUlps(dense + small + small.map { -$0 }, VectorMath.erf, Foundation.erf)
        #expect(worst.ulps <= 2.5, "erf(\(worst.at)) is \(worst.ulps) ulp off")
        #expect(VectorMath.erf(.infinity) == 1 && VectorMath.erf(-.infinity) == -1 && VectorMath.erf(1e30) == 1)
        #expect(VectorMath.erf(-0.0).sign == .minus && VectorMath.erf(0) == 0)
        #expect(VectorMath.erf(.nan).isNaN)
    }

    @Test("every device's erf op is within 2.5 ulp from 1e-30 to 6 (OpenCL's math.cl has the same polynomial)", arguments: TestDevices.all)
    func erfOnDevices(_ d: Device) {
        let dense = stride(from: Float(-6), through: 6, by: 1.0 / 1024).map { $0 }
        let small = (0...300).map { Float(Foundation.pow(10, -30 + Double($0) / 10)) }
        let inputs = dense + small + small.map { -$0 } + [.infinity, -.infinity, 1e30, -0.0, .nan]
        let values = Tensor(inputs, device: d).erf().toArray()
        let n = inputs.count - 5
        var worst = (ulps: 0.0, at: Float(0))
        for (x, y) in zip(inputs[..<n], values[..<n]) {
            let exact = Foundation.erf(Double(x))
            let error = Swift.abs(Double(y) - exact) / Double(Float(exact).magnitude.ulp)
            if error > worst.ulps { worst = (error, x) }
        }
        #expect(worst.ulps <= 2.5, "erf(\(worst.at)) is \(worst.ulps) ulp off on \(d)")
        #expect(Array(values[n..<(n + 3)]) == [1, -1, 1] && values[n + 3].bitPattern == (-0.0 as Float).bitPattern && values[n + 4].isNaN)
    }

    @Test("exp is within 1.5 ulp on [-87, 88], 0 below and infinite above")
    func exp() {
        let inputs = stride(from: Float(-87), through: 88, by: 1.0 / 512).map { $0 } + (0...200).map { Float($0 - 100) * 1e-4 }
        let worst = worstUlps(inputs, VectorMath.exp, Foundation.exp)
        #expect(worst.ulps <= 1.5, "exp(\(worst.at)) is \(worst.ulps) ulp off")
        #expect(VectorMath.exp(-100) == 0 && VectorMath.exp(100) == .infinity && VectorMath.exp(0) == 1)
        #expect(VectorMath.exp(-.infinity) == 0 && VectorMath.exp(.infinity) == .infinity && VectorMath.exp(.nan).isNaN)
    }

    @Test("every device's gelu, its gradient and erf match Double references", arguments: TestDevices.all)
    func geluOnDevices(_ d: Device) {
        let values = stride(from: Float(-8), through: 8, by: 1.0 / 64).map { $0 }
        let x = Tensor(values, device: d, requiresGrad: true)
        let y = x.gelu()
        y.sum().backward()
        let exact = values.map { v -> (Double, Double) in
            let u = Double(v)
            let cdf = 0.5 * (1 + Foundation.erf(u / 2.0.squareRoot())), pdf = Foundation.exp(-0.5 * u * u) / (2 * Double.pi).squareRoot()
            return (u * cdf, cdf + u * pdf)
        }
        // 1 + erf(x/√2) cancels for negative x (as in PyTorch's formula): 2 ulp of 1 times |x|/2.
        expectClose(y.toArray(), exact.map { Float($0.0) }, rtol: 1e-6, atol: 5e-7)
        expectClose(x.grad!.toArray(), exact.map { Float($0.1) }, rtol: 1e-6, atol: 5e-7)
        expectClose(x.detach().erf().toArray(), values.map { Float(Foundation.erf(Double($0))) }, rtol: 3e-7, atol: 0)
    }

    @Test("ember_gelu and ember_gelu_gradient agree with Double references and with the Swift loops, in every instruction set the CPU has")
    func geluKernels() {
        let values = stride(from: Float(-9), through: 9, by: 1.0 / 128).map { $0 } + [.nan, 0, -0.0]
        let gradients = values.indices.map { Float($0 % 7) - 3 }
        let exact = values.map { v -> (Double, Double) in
            let u = Double(v)
            let cdf = 0.5 * (1 + Foundation.erf(u / 2.0.squareRoot())), pdf = Foundation.exp(-0.5 * u * u) / (2 * Double.pi).squareRoot()
            return (u * cdf, cdf + u * pdf)
        }
        // The strided path: the Swift loops over VectorMath (a stride-2 view of twice the values).
        let spread = Tensor(values.flatMap { [$0, 0] }).reshape([values.count, 2]).select(dim: 1, index: 0)
        let spreadGradient = Tensor(gradients.flatMap { [$0, 0] }).reshape([values.count, 2]).select(dim: 1, index: 0)
        let swiftValues = spread.gelu().toArray()
        let swiftGradients = Tensor.geluGradient(spreadGradient, input: spread, approximate: .none).toArray()
        for isa in 0...Int(ember_cpu_isa().rawValue) {
            var y = [Float](repeating: 0, count: values.count), dy = y
            ember_gelu_isa(ember_isa(rawValue: UInt32(isa)), values, &y, values.count)
            ember_gelu_gradient_isa(ember_isa(rawValue: UInt32(isa)), gradients, values, &dy, values.count)
            for i in values.indices where values[i].isNaN {
                #expect(y[i].isNaN && dy[i].isNaN, "isa \(isa): NaN in, \(y[i]) and \(dy[i]) out")
            }
            let finite = values.indices.filter { !values[$0].isNaN }
            expectClose(finite.map { y[$0] }, finite.map { Float(exact[$0].0) }, rtol: 1e-6, atol: 5e-7, "gelu, isa \(isa)")
            expectClose(finite.map { dy[$0] }, finite.map { gradients[$0] * Float(exact[$0].1) }, rtol: 1e-6, atol: 2e-6, "gradient, isa \(isa)")
            expectClose(finite.map { y[$0] }, finite.map { swiftValues[$0] }, rtol: 1e-6, atol: 5e-7, "gelu against Swift, isa \(isa)")
            expectClose(finite.map { dy[$0] }, finite.map { swiftGradients[$0] }, rtol: 1e-6, atol: 2e-6, "gradient against Swift, isa \(isa)")
        }
    }
}
