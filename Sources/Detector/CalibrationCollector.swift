import Values

/// Runs the f32 network over sample frames and gathers, per convolution output, a histogram of |activation|
/// (32 log-spaced buckets per octave, straight from the float's exponent and top mantissa bits), from which
/// `calibration(method:)` picks each tensor's int8 range.
public final class CalibrationCollector {
    /// How a range is chosen from a histogram.
    public enum Method: String, Sendable, CaseIterable {
        /// The range minimising rounding plus clipping error (mean squared) over the observed values.
        case mse
        /// The 99.99th percentile of |activation|.
        case percentile
    }

    private static let bucketShift: UInt32 = 18
    private static let bucketCount = 1 << (31 - 18)

    private let model: Model
    private let engine: InferenceEngine
    private var preprocessor: Preprocessor
    /// Per tensor, counts per bucket (empty for tensors not calibrated: the input and the head outputs).
    private var histograms: [[UInt64]]
    public private(set) var frames = 0

    public init(model: Model) throws(ModelError) {
        self.model = model
        let spec = model.network.spec
        engine = try InferenceEngine(network: CompiledNetwork(spec: spec, precision: .f32, fuse: false))
        preprocessor = Preprocessor(outputHeight: spec.input.height, outputWidth: spec.input.width,
                                    scale: spec.inputScale, offset: spec.inputOffset)
        var outputs = Set<Int>()
        for head in spec.heads { outputs.formUnion([head.boxEncodings, head.classLogits]) }
        histograms = spec.tensors.indices.map { t in
            t == 0 || outputs.contains(t) ? [] : [UInt64](repeating: 0, count: Self.bucketCount)
        }
    }

    /// Adds one frame's activations.
    public func add(_ pixels: PixelBuffer) throws(ModelError) {
        preprocessor.run(pixels, into: engine.input)
        try engine.run { tensor, values in
            guard !self.histograms[tensor].isEmpty else { return }
            self.histograms[tensor].withUnsafeMutableBufferPointer { counts in
                for v in values { counts[Int((v.bitPattern & 0x7fff_ffff) >> Self.bucketShift)] &+= 1 }
            }
        }
        frames += 1
    }

    /// The ranges chosen by `method` from everything added so far.
    public func calibration(method: Method) -> Calibration {
        let spec = model.network.spec
        let relu6 = Set(spec.convolutions.filter { $0.postOps.contains(.relu6) }.map(\.output))
        var ranges: [String: Float] = [:]
        for conv in spec.convolutions where !histograms[conv.output].isEmpty {
            let counts = histograms[conv.output]
            // ReLU6 outputs are u8 over [0, range]; linear ones s8 over [-range, range].
            let levels: Double = relu6.contains(conv.output) ? 255 : 127
            let range = switch method {
            case .mse: Self.mseRange(counts, levels: levels)
            case .percentile: Self.percentileRange(counts, fraction: 0.9999)
            }
            ranges[conv.name] = Float(relu6.contains(conv.output) ? min(range, 6) : range)
        }
        return Calibration(modelFingerprint: model.fingerprint, method: method.rawValue, frames: frames, ranges: ranges)
    }

    private static func upperEdge(_ bucket: Int) -> Double { Double(Float(bitPattern: UInt32(bucket + 1) << bucketShift)) }
    private static func middle(_ bucket: Int) -> Double {
        (Double(Float(bitPattern: UInt32(bucket) << bucketShift)) + upperEdge(bucket)) / 2
    }

    static func percentileRange(_ counts: [UInt64], fraction: Double) -> Double {
        let total = counts.reduce(0, +)
        let allowedAbove = UInt64(Double(total) * (1 - fraction))
        var above: UInt64 = 0
        for bucket in counts.indices.reversed() {
            above += counts[bucket]
            if above > allowedAbove { return max(upperEdge(bucket), 1e-6) }
        }
        return 1e-6
    }

    /// Minimises, over candidate ranges c at bucket edges, (c / levels)^2 / 12 per value inside [0, c] (rounding;
    /// exact zeros excluded, they round to themselves) plus (|v| - c)^2 per value beyond it (clipping).
    static func mseRange(_ counts: [UInt64], levels: Double) -> Double {
        let used = counts.indices.filter { counts[$0] > 0 && $0 > 0 }
        guard let top = used.last else { return 1e-6 }
        // Suffix sums of n, n v and n v^2 over buckets above the candidate.
        var n = 0.0, s1 = 0.0, s2 = 0.0
        for b in used {
            let v = middle(b), c = Double(counts[b])
            n += c; s1 += c * v; s2 += c * v * v
        }
        var inside = 0.0
        var best = (error: Double.infinity, range: upperEdge(top))
        for b in used {
            let v = middle(b), c = Double(counts[b])
            inside += c
            n -= c; s1 -= c * v; s2 -= c * v * v
            let range = upperEdge(b)
            let step = range / levels
            let error = inside * step * step / 12 + (s2 - 2 * range * s1 + range * range * n)
            if error < best.error { best = (error, range) }
        }
        return max(best.range, 1e-6)
    }
}
