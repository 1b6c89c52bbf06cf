import CZlib
import EmberPlot
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// Headless Chromium (Debian's `chromium`), when installed.
private let chromium: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
    .first { FileManager.default.isExecutableFile(atPath: $0) }

/// The SVG charts (`EmberPlot`), `ember train --plot` and `--profile`, and the pictures as a
/// real browser draws them.
@Suite("Plots")
struct PlotTests {
    @Test("ticks fall on round values, labels are short, smoothing is debiased")
    func ticks() {
        #expect(Plot.ticks(0, 1) == [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1])
        #expect(Plot.ticks(3, 47) == [10, 20, 30, 40])
        #expect(Plot.ticks(1, 3, integers: true) == [1, 2, 3])
        #expect(Plot.label(0.5) == "0.5" && Plot.label(20) == "20" && Plot.label(0.0001) == "1e-04")
        let smoothed = Plot.smooth([2, 2, 2])
        #expect(smoothed.allSatisfy { abs($0 - 2) < 1e-12 }, "a constant stays constant (bias corrected)")
    }

    @Test("a figure is well-formed SVG with titles, axis labels, ticks and a legend")
    func figure() throws {
        let chart = LineChart(title: "Loss", xLabel: "step", yLabel: "loss", series: [
            Series("raw", points: [(1, 2), (2, 1), (3, 0.5)], color: Plot.palette[0]),
            Series("smoothed", points: [(1, 2), (2, 1.5), (3, 1)], color: Plot.palette[1]),
        ])
        let svg = Figure(title: "Curves & more", panels: [chart, chart], columns: 2).svg()
        let parser = XMLParser(data: Data(svg.utf8))
        #expect(parser.parse(), "well-formed XML: \(String(describing: parser.parserError))")
        for text in [">Loss<", ">step<", ">loss<", ">raw<", ">smoothed<", "Curves &amp; more", ">0.5<"] {
            #expect(svg.contains(text), "missing \(text)")
        }
        #expect(svg.contains("width=\"960\" height=\"336\""))
        let bars = BarChart(title: "bench", axisLabel: "% of best", series: ["cpu", "opencl:0"], groups: [
            .init(label: "add", bars: [(100, "3 GB/s"), (50, "1.5 GB/s")]), .init(label: "sum", bars: [nil, (100, "2 GB/s")]),
        ]).svg()
        #expect(XMLParser(data: Data(bars.utf8)).parse())
        #expect(bars.contains(">% of best<") && bars.contains(">opencl:0<") && bars.contains(">1.5 GB/s<"))
    }

    /// Runs the built `ember` with `arguments`; returns its status and standard output.
    static func ember(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let binary = try #require(CLITests.binary, "the ember binary was not built beside the tests")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    @Test("ember train --plot writes the curves, --profile prints the top ops and writes a trace")
    func trainPlotAndProfile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ember-plot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let svg = folder.appendingPathComponent("curves.svg"), trace = folder.appendingPathComponent("trace.json")
        let (status, output) = try PlotTests.ember(["train", "--device", "cpu", "--epochs", "2", "--plot", svg.path,
                                                    "--profile", trace.path, "--profile-steps", "2"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("profiled 2 training steps after 3 warm-up steps"))
        #expect(output.contains("Self host") && output.contains("ProfilerStep") && output.contains("AddmmBackward"), "\(output)")
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: trace)) as? [String: Any]
        #expect((document?["traceEvents"] as? [Any])?.isEmpty == false)
        let text = try String(contentsOf: svg, encoding: .utf8)
        #expect(XMLParser(data: Data(text.utf8)).parse())
        for title in ["Training loss per step", "Loss per epoch", "Test accuracy per epoch", "Learning rate", ">smoothed (EMA 0.9)<", ">epoch<"] {
            #expect(text.contains(title), "missing \(title)")
        }
    }

    @Test("headless Chromium draws ember train's curves: the right size, not blank, the series' colours present",
          .enabled(if: chromium != nil, "chromium is not installed (apt-get install chromium, or make chromium); the SVG is not rendered"))
    func rendersInChromium() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ember-render-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let svg = folder.appendingPathComponent("curves.svg"), png = folder.appendingPathComponent("curves.png")
        #expect(try PlotTests.ember(["train", "--device", "cpu", "--epochs", "3", "--plot", svg.path]).status == 0)
        try PlotTests.render(svg, to: png, width: 960, height: 636)
        let image = try #require(PNG(data: Data(contentsOf: png)))
        #expect(image.width == 960 && image.height == 636)
        let pixels = image.pixels
        let white = pixels.filter { $0.r > 245 && $0.g > 245 && $0.b > 245 }.count
        #expect(Double(pixels.count - white) / Double(pixels.count) > 0.02, "not blank")
        // The smoothed loss line (#4e79a7) and the accuracy line (#59a14f) are drawn.
        func near(_ r: Int, _ g: Int, _ b: Int) -> Int {
            pixels.filter { abs(Int($0.r) - r) < 24 && abs(Int($0.g) - g) < 24 && abs(Int($0.b) - b) < 24 }.count
        }
        #expect(near(0x4e, 0x79, 0xa7) > 300)
        #expect(near(0x59, 0xa1, 0x4f) > 100)
    }

    /// Renders `svg` to `png` with headless Chromium at `width` x `height` pixels.
    static func render(_ svg: URL, to png: URL, width: Int, height: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium!)
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
                             "--window-size=\(width),\(height)", "--user-data-dir=\(svg.deletingLastPathComponent().path)/profile",
                             "--screenshot=\(png.path)", svg.absoluteString]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "chromium exited with \(process.terminationStatus)")
    }
}

/// Just enough of a PNG decoder for Chromium's screenshots: 8-bit RGB or RGBA, not interlaced.
struct PNG {
    let width: Int, height: Int
    let pixels: [(r: UInt8, g: UInt8, b: UInt8)]

    init?(data: Data) {
        let bytes = [UInt8](data)
        guard bytes.count > 8, bytes[0..<8] == [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] else { return nil }
        func u32(_ i: Int) -> Int { Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]) }
        var i = 8, compressed: [UInt8] = []
        var (w, h, channels) = (0, 0, 0)
        while i + 8 <= bytes.count {
            let length = u32(i), type = String(decoding: bytes[i + 4..<i + 8], as: UTF8.self)
            let body = Array(bytes[i + 8..<min(bytes.count, i + 8 + length)])
            if type == "IHDR" {
                (w, h) = (u32(i + 8), u32(i + 12))
                guard body[8] == 8, body[12] == 0, body[9] == 2 || body[9] == 6 else { return nil }
                channels = body[9] == 6 ? 4 : 3
            } else if type == "IDAT" {
                compressed += body
            }
            i += 12 + length
        }
        let stride = w * channels
        var raw = [UInt8](repeating: 0, count: h * (stride + 1))
        var size = uLongf(raw.count)
        guard w > 0, uncompress(&raw, &size, compressed, uLong(compressed.count)) == Z_OK, Int(size) == raw.count else { return nil }
        var out = [UInt8](repeating: 0, count: h * stride)
        for y in 0..<h {
            let filter = raw[y * (stride + 1)]
            for x in 0..<stride {
                let v = Int(raw[y * (stride + 1) + 1 + x])
                let a = x >= channels ? Int(out[y * stride + x - channels]) : 0
                let b = y > 0 ? Int(out[(y - 1) * stride + x]) : 0
                let c = x >= channels && y > 0 ? Int(out[(y - 1) * stride + x - channels]) : 0
                let predicted: Int
                switch filter {
                case 1: predicted = a
                case 2: predicted = b
                case 3: predicted = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predicted = pa <= pb && pa <= pc ? a : pb <= pc ? b : c
                default: predicted = 0
                }
                out[y * stride + x] = UInt8((v + predicted) & 0xff)
            }
        }
        width = w
        height = h
        pixels = (0..<w * h).map { p in (out[p * channels], out[p * channels + 1], out[p * channels + 2]) }
    }
}
