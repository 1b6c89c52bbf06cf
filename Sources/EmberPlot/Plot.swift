import Foundation

/// Standalone SVG charts for Ember's tools (`ember train --plot`, `ember-bench --chart`):
/// line charts and horizontal bar charts with titled panels, labelled axes, ticks at round
/// values and a legend. No dependencies; the output opens in any browser.
public enum Plot {
    /// The colours of successive series (Tableau 10).
    public static let palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7"]

    /// Escapes text for SVG.
    public static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// About `count` round tick values (1, 2 or 5 times a power of ten apart) covering `low...high`.
    /// With `integers`, ticks are whole numbers (epochs, steps).
    public static func ticks(_ low: Double, _ high: Double, count: Int = 5, integers: Bool = false) -> [Double] {
        guard high > low, low.isFinite, high.isFinite else { return [low] }
        let raw = integers ? Swift.max(1, (high - low) / Double(max(count, 1))) : (high - low) / Double(max(count, 1))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var out: [Double] = []
        var v = (low / step).rounded(.up) * step
        while v <= high + step * 1e-9 { out.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
        return out
    }

    /// A tick label: few digits, no trailing zeros, exponent notation for extreme values.
    public static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e5 || a < 1e-3 { return String(format: "%.0e", v) }
        var s = String(format: a >= 100 ? "%.0f" : a >= 1 ? "%.2f" : "%.4f", v)
        if s.contains(".") { while s.hasSuffix("0") { s.removeLast() }; if s.hasSuffix(".") { s.removeLast() } }
        return s
    }

    /// An exponential moving average with bias correction (TensorBoard's smoothing).
    public static func smooth(_ values: [Double], weight: Double = 0.9) -> [Double] {
        var average = 0.0, correction = 0.0
        return values.map { v in
            average = weight * average + (1 - weight) * v
            correction = weight * correction + (1 - weight)
            return average / correction
        }
    }
}

/// One line of a `LineChart`.
public struct Series: Sendable {
    /// The legend entry.
    public var name: String
    /// The points, in x order.
    public var points: [(x: Double, y: Double)]
    /// Stroke colour (CSS).
    public var color: String
    /// Stroke width in pixels.
    public var width: Double
    /// Stroke opacity, 0...1.
    public var opacity: Double
    /// Whether to mark each point with a dot (sparse series such as per-epoch values).
    public var markers: Bool

    /// A series; `markers` draws a dot at each point.
    public init(_ name: String, points: [(x: Double, y: Double)], color: String, width: Double = 2,
                opacity: Double = 1, markers: Bool = false) {
        self.name = name
        self.points = points
        self.color = color
        self.width = width
        self.opacity = opacity
        self.markers = markers
    }
}

/// A line chart panel: a title, labelled axes with ticks, grid lines, its series and a legend.
public struct LineChart: Sendable {
    /// The panel title.
    public var title: String
    /// The x-axis label.
    public var xLabel: String
    /// The y-axis label.
    public var yLabel: String
    /// The lines.
    public var series: [Series]

    /// A panel with the given title, axis labels and lines.
    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    /// The panel's SVG elements inside the box at (`x`, `y`) of `width` x `height` pixels.
    public func render(x left: Double, y top: Double, width: Double, height: Double) -> [String] {
        let margin = (left: 64.0, right: 16.0, top: 30.0, bottom: 44.0)
        let plotLeft = left + margin.left, plotTop = top + margin.top
        let plotWidth = width - margin.left - margin.right, plotHeight = height - margin.top - margin.bottom
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        var (xLow, xHigh) = (all.map(\.x).min() ?? 0, all.map(\.x).max() ?? 1)
        var (yLow, yHigh) = (all.map(\.y).min() ?? 0, all.map(\.y).max() ?? 1)
        if xHigh <= xLow { xHigh = xLow + 1 }
        if yHigh <= yLow { let pad = Swift.max(abs(yLow) * 0.1, 1e-3); (yLow, yHigh) = (yLow - pad, yHigh + pad) }
        let yPad = (yHigh - yLow) * 0.05
        (yLow, yHigh) = (yLow - yPad, yHigh + yPad)
        let yTicks = Plot.ticks(yLow, yHigh)
        let xTicks = Plot.ticks(xLow, xHigh, integers: all.allSatisfy { $0.x == $0.x.rounded() })
        func px(_ v: Double) -> Double { plotLeft + (v - xLow) / (xHigh - xLow) * plotWidth }
        func py(_ v: Double) -> Double { plotTop + plotHeight - (v - yLow) / (yHigh - yLow) * plotHeight }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var out = ["<g>",
                   "<text x=\"\(f(left + width / 2))\" y=\"\(f(top + 18))\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">\(Plot.escape(title))</text>",
                   "<rect x=\"\(f(plotLeft))\" y=\"\(f(plotTop))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"#ffffff\" stroke=\"#444444\"/>"]
        for t in yTicks {
            out.append("<line x1=\"\(f(plotLeft))\" x2=\"\(f(plotLeft + plotWidth))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\" stroke=\"#e0e0e0\"/>")
            out.append("<line x1=\"\(f(plotLeft - 5))\" x2=\"\(f(plotLeft))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\" stroke=\"#444444\"/>")
            out.append("<text x=\"\(f(plotLeft - 8))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(Plot.label(t))</text>")
        }
        for t in xTicks {
            out.append("<line x1=\"\(f(px(t)))\" x2=\"\(f(px(t)))\" y1=\"\(f(plotTop))\" y2=\"\(f(plotTop + plotHeight))\" stroke=\"#eeeeee\"/>")
            out.append("<line x1=\"\(f(px(t)))\" x2=\"\(f(px(t)))\" y1=\"\(f(plotTop + plotHeight))\" y2=\"\(f(plotTop + plotHeight + 5))\" stroke=\"#444444\"/>")
            out.append("<text x=\"\(f(px(t)))\" y=\"\(f(plotTop + plotHeight + 18))\" text-anchor=\"middle\">\(Plot.label(t))</text>")
        }
        out.append("<text x=\"\(f(plotLeft + plotWidth / 2))\" y=\"\(f(top + height - 6))\" text-anchor=\"middle\">\(Plot.escape(xLabel))</text>")
        out.append("<text transform=\"translate(\(f(left + 14)), \(f(plotTop + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(Plot.escape(yLabel))</text>")
        for s in series {
            let points = s.points.filter { $0.x.isFinite && $0.y.isFinite }
            guard !points.isEmpty else { continue }
            let path = points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            out.append("<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"\(s.width)\" stroke-opacity=\"\(s.opacity)\" stroke-linejoin=\"round\" points=\"\(path)\"/>")
            if s.markers {
                for p in points { out.append("<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3\" fill=\"\(s.color)\"/>") }
            }
        }
        // Legend inside the plot area, top right or, when the lines pass there, bottom right.
        let entries = series.filter { !$0.name.isEmpty }
        if !entries.isEmpty {
            let legendWidth = Double(entries.map(\.name.count).max() ?? 0) * 6.5 + 34
            let legendHeight = Double(entries.count) * 16 + 6
            let lx = plotLeft + plotWidth - legendWidth - 6
            func covered(_ boxTop: Double) -> Int {
                all.filter { px($0.x) >= lx - 4 && py($0.y) >= boxTop - 4 && py($0.y) <= boxTop + legendHeight + 4 }.count
            }
            let bottom = plotTop + plotHeight - legendHeight - 6
            let ly = covered(plotTop + 6) > covered(bottom) ? bottom : plotTop + 6
            out.append("<rect x=\"\(f(lx))\" y=\"\(f(ly))\" width=\"\(f(legendWidth))\" height=\"\(f(legendHeight))\" fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#bbbbbb\"/>")
            for (i, s) in entries.enumerated() {
                let rowY = ly + 14 + Double(i) * 16
                out.append("<line x1=\"\(f(lx + 6))\" x2=\"\(f(lx + 24))\" y1=\"\(f(rowY - 4))\" y2=\"\(f(rowY - 4))\" stroke=\"\(s.color)\" stroke-width=\"\(Swift.max(s.width, 2))\" stroke-opacity=\"\(s.opacity)\"/>")
                out.append("<text x=\"\(f(lx + 28))\" y=\"\(f(rowY))\">\(Plot.escape(s.name))</text>")
            }
        }
        out.append("</g>")
        return out
    }
}

/// Panels laid out on a grid, as one standalone SVG document.
public struct Figure: Sendable {
    /// The line chart panels, row by row.
    public var panels: [LineChart]
    /// Panels per row.
    public var columns: Int
    /// Size of one panel in pixels.
    public var panelSize: (width: Double, height: Double)
    /// A heading above the panels.
    public var title: String

    /// A figure of `panels`, `columns` per row, each `panelSize` pixels.
    public init(title: String, panels: [LineChart], columns: Int = 2, panelSize: (width: Double, height: Double) = (480, 300)) {
        self.title = title
        self.panels = panels
        self.columns = Swift.max(columns, 1)
        self.panelSize = panelSize
    }

    /// The SVG document.
    public func svg() -> String {
        let rows = (panels.count + columns - 1) / columns
        let width = Int(panelSize.width * Double(Swift.min(columns, Swift.max(panels.count, 1))))
        let height = Int(panelSize.height * Double(rows) + 36)
        var out = [Plot.header(width: width, height: height),
                   "<text x=\"\(width / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">\(Plot.escape(title))</text>"]
        for (i, panel) in panels.enumerated() {
            out += panel.render(x: Double(i % columns) * panelSize.width, y: 36 + Double(i / columns) * panelSize.height,
                                width: panelSize.width, height: panelSize.height)
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}

/// Horizontal bars in groups (one group per label, one bar per series), on a shared value
/// axis with ticks and gridlines, and a legend.
public struct BarChart: Sendable {
    /// One group: its label and one value (and the text drawn beside its bar) per series; nil
    /// where a series has no value.
    public struct Group: Sendable {
        /// The group's label, at the left.
        public var label: String
        /// One bar per series.
        public var bars: [(value: Double, text: String)?]

        /// A group of bars.
        public init(label: String, bars: [(value: Double, text: String)?]) {
            self.label = label
            self.bars = bars
        }
    }

    /// The chart title.
    public var title: String
    /// The value axis label.
    public var axisLabel: String
    /// The series names (legend), one colour each.
    public var series: [String]
    /// The groups, top to bottom.
    public var groups: [Group]

    /// A bar chart.
    public init(title: String, axisLabel: String, series: [String], groups: [Group]) {
        self.title = title
        self.axisLabel = axisLabel
        self.series = series
        self.groups = groups
    }

    /// The SVG document.
    public func svg() -> String {
        let barHeight = 14.0, groupGap = 10.0
        let labelWidth = Double(Swift.min(60, groups.map(\.label.count).max() ?? 10)) * 6.2 + 20
        let chartWidth = 460.0, textRoom = 120.0
        let top = 66.0
        let plotHeight = Double(groups.count) * (Double(series.count) * barHeight + groupGap)
        let width = labelWidth + chartWidth + textRoom
        let height = top + plotHeight + 50
        let high = groups.flatMap { $0.bars.compactMap { $0?.value } }.max() ?? 1
        let ticks = Plot.ticks(0, Swift.max(high, 1e-9))
        let axisHigh = Swift.max(ticks.last ?? high, high)
        func px(_ v: Double) -> Double { labelWidth + v / axisHigh * chartWidth }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var out = [Plot.header(width: Int(width), height: Int(height)),
                   "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">\(Plot.escape(title))</text>"]
        for (i, name) in series.enumerated() {
            let x = labelWidth + Double(i) * 130
            out.append("<rect x=\"\(f(x))\" y=\"34\" width=\"12\" height=\"12\" fill=\"\(Plot.palette[i % Plot.palette.count])\"/><text x=\"\(f(x + 16))\" y=\"44\">\(Plot.escape(name))</text>")
        }
        for t in ticks {
            out.append("<line x1=\"\(f(px(t)))\" x2=\"\(f(px(t)))\" y1=\"\(f(top - 4))\" y2=\"\(f(top + plotHeight))\" stroke=\"#e6e6e6\"/>")
            out.append("<line x1=\"\(f(px(t)))\" x2=\"\(f(px(t)))\" y1=\"\(f(top + plotHeight))\" y2=\"\(f(top + plotHeight + 5))\" stroke=\"#444444\"/>")
            out.append("<text x=\"\(f(px(t)))\" y=\"\(f(top + plotHeight + 18))\" text-anchor=\"middle\">\(Plot.label(t))</text>")
        }
        out.append("<line x1=\"\(f(labelWidth))\" x2=\"\(f(labelWidth + chartWidth))\" y1=\"\(f(top + plotHeight))\" y2=\"\(f(top + plotHeight))\" stroke=\"#444444\"/>")
        out.append("<line x1=\"\(f(labelWidth))\" x2=\"\(f(labelWidth))\" y1=\"\(f(top - 4))\" y2=\"\(f(top + plotHeight))\" stroke=\"#444444\"/>")
        out.append("<text x=\"\(f(labelWidth + chartWidth / 2))\" y=\"\(f(top + plotHeight + 38))\" text-anchor=\"middle\">\(Plot.escape(axisLabel))</text>")
        var y = top
        for group in groups {
            let label = group.label.count > 60 ? String(group.label.prefix(59)) + "…" : group.label
            out.append("<text x=\"\(f(labelWidth - 8))\" y=\"\(f(y + Double(series.count) * barHeight / 2 + 4))\" text-anchor=\"end\">\(Plot.escape(label))</text>")
            for (i, bar) in group.bars.enumerated() {
                guard let bar else { continue }
                let barTop = y + Double(i) * barHeight
                let w = Swift.max(1, px(bar.value) - labelWidth)
                out.append("<rect x=\"\(f(labelWidth))\" y=\"\(f(barTop + 2))\" width=\"\(f(w))\" height=\"\(f(barHeight - 3))\" fill=\"\(Plot.palette[i % Plot.palette.count])\"/>")
                out.append("<text x=\"\(f(labelWidth + w + 4))\" y=\"\(f(barTop + barHeight - 2))\">\(Plot.escape(bar.text))</text>")
            }
            y += Double(series.count) * barHeight + groupGap
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}

extension Plot {
    /// The opening tag of a standalone SVG document with a white background.
    static func header(width: Int, height: Int) -> String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"11\" fill=\"#222222\">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>"
    }
}
