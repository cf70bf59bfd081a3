import Foundation
import Values

/// A loaded detection model: the compiled network, its anchors and settings. Load once per process;
/// each worker thread then makes its own `Detector`, all sharing the read-only weights.
public final class Model: Sendable {
    public let path: String
    public let settings: ModelSettings
    public let labels: Labels
    /// Network input size, from the graph's preprocessor.
    public let inputWidth: Int
    public let inputHeight: Int
    /// Object classes, without the background.
    public let classCount: Int
    public let anchorCount: Int
    public let multiplyAccumulates: Int
    /// Problems that do not stop the model from running (labels that do not fit its classes), for the log.
    public let warnings: [String]
    /// The precision the network was compiled in, and why it was chosen.
    public let precision: PrecisionSelection
    /// Under `auto`: why a calibration file beside the model was not used (it is wrong for this model).
    public let calibrationWarning: String?
    /// FNV-1a 64 of the model file: ties a calibration file to these bytes.
    let fingerprint: String
    let network: CompiledNetwork
    let anchors: Anchors

    /// Layers that oneDNN could only give its slow reference kernels (expected empty on x86-64 with AVX2 or better).
    public var referenceKernels: [String] { network.referenceKernels }
    /// The oneDNN implementation of every primitive (a whole layer, or a band of rows of a fused one).
    public var implementations: [(layer: String, implementation: String)] {
        network.kernels.map { (network.spec.convolutions[$0.layer].name, $0.implementation) }
    }

    /// The largest graph file read (the reference models are 5-20 MB).
    static let maximumFileSize = 1 << 30

    /// Loads a frozen graph and compiles it in `precision` (`auto`: see `PrecisionChoice.select`).
    /// Labels come from `labelsPath` if given, else the sidecar, else COCO's for a 90-class graph, else `class_<id>`
    /// (with a warning). int8 reads activation ranges from `calibrationPath`, by default `Calibration.path(forModel:)`.
    public init(path: String, labelsPath: String? = nil, precision choice: PrecisionChoice = .f32,
                calibrationPath: String? = nil) throws(ModelError) {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { throw .unreadable(path: path, reason: "no such file") }
        if let refusal = FileType.refusalToRead(path) { throw .unreadable(path: path, reason: refusal) }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard size <= Self.maximumFileSize else {
            throw .unreadable(path: path, reason: "larger than \(Self.maximumFileSize >> 20) MiB, more than a detection model can be")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable(path: path, reason: "permission denied") }
        let spec: NetworkSpec
        do {
            spec = try GraphImporter.importNetwork(try GraphDef(data: data))
        } catch {
            throw .unreadable(path: path, reason: error.description)
        }
        settings = try ModelSettings.forModel(at: path)
        classCount = spec.classesWithBackground - 1
        let source = labelsPath.map { "label file \($0)" } ?? "the sidecar's 'labels'"
        let (labels, warning) = Self.labels(file: try labelsPath.map(Labels.load(path:)), sidecar: settings.labels, source: source,
                                            classCount: classCount)
        self.labels = labels
        warnings = warning.map { [$0] } ?? []
        anchors = try Anchors(settings: settings, spec: spec)
        fingerprint = Calibration.fingerprint(data)
        let calibrationPath = calibrationPath ?? Calibration.path(forModel: path)
        let calibrationFound = choice == .auto || choice == .int8 ? FileManager.default.fileExists(atPath: calibrationPath) : false
        var ranges: [Float]? = nil
        var calibrationProblem: ModelError? = nil
        if calibrationFound {
            do throws(ModelError) {
                ranges = try Calibration.load(path: calibrationPath)
                    .activationRanges(for: spec, modelFingerprint: fingerprint, path: calibrationPath)
            } catch {
                calibrationProblem = error
            }
        }
        if choice == .int8 {
            guard calibrationFound else {
                throw .calibration(path: calibrationPath, reason: "no such file; int8 needs one (make it with `sightline calibrate`)")
            }
            if let calibrationProblem { throw calibrationProblem }
        }
        let cpu = CPUFeatures.current
        var selection = choice.select(cpu: cpu, calibrationFound: calibrationFound, calibrationProblem: calibrationProblem.map { "\($0)" })
        // Only optimized kernels: a precision this CPU has none for is refused, or under auto passed over.
        var compiled: CompiledNetwork? = nil
        while compiled == nil {
            let problem: String
            do throws(ModelError) {
                let candidate = try CompiledNetwork(spec: spec, precision: selection.precision, activationRanges: ranges)
                if candidate.referenceKernels.isEmpty || selection.precision == .f32 {
                    compiled = candidate
                    break
                }
                problem = "reference kernels for \(candidate.referenceKernels.prefix(3).joined(separator: "; "))"
            } catch where selection.precision != .f32 {
                problem = "\(error)"
            }
            guard choice == .auto else {
                throw .engine("\(selection.precision) has no optimized oneDNN kernels on this CPU (\(cpu.isa)): \(problem)")
            }
            let next: Precision = selection.precision == .int8 && cpu.bf16 ? .bf16 : .f32
            selection = .init(precision: next, reason: "auto: \(selection.precision) has no optimized kernels on this CPU (\(cpu.isa))")
        }
        network = compiled!
        precision = selection
        calibrationWarning = choice == .auto ? calibrationProblem.map { "\($0); using \(selection.precision)" } : nil
        inputWidth = spec.input.width
        inputHeight = spec.input.height
        anchorCount = spec.anchorCount
        multiplyAccumulates = spec.multiplyAccumulates
    }

    /// The labels for a graph of `classCount` classes, and a warning where they may be wrong: a label map
    /// (`file`, else `sidecar`) that does not end at the graph's last class id, or none at all for a graph
    /// that is not COCO's 90 classes (its classes are then named `class_<id>` rather than given COCO's names).
    static func labels(file: Labels?, sidecar: [Int: String]?, source: String, classCount: Int) -> (Labels, String?) {
        guard let labels = file ?? sidecar.map(Labels.init(names:)) else {
            if classCount == Labels.cocoClassCount { return (.coco, nil) }
            return (Labels(names: [:]), "the model has no labels and \(classCount) classes, not COCO's \(Labels.cocoClassCount): "
                    + "its classes are named class_1...class_\(classCount); give a label file or 'labels' in the model's sidecar")
        }
        let highest = labels.names.keys.max() ?? 0
        guard highest != classCount else { return (labels, nil) }
        return (labels, "\(source) names classes up to id \(highest) but the model predicts \(classCount) classes"
                + (highest > classCount ? " (ids above \(classCount) never occur)" : " (ids above \(highest) are named class_<id>)"))
    }

    public func makeDetector() throws(ModelError) -> Detector { try Detector(model: self) }

    /// The name of every class the model detects, in class id order (index 0 = class id 1).
    public var labelNames: [String] { (1...max(classCount, 1)).map { labels.name(for: $0) } }
}

/// Detects objects in frames: preprocessing, the network and SSD post-processing, with all buffers
/// allocated once. One per worker thread; not for concurrent use.
// @unchecked: its engine's oneDNN handles and buffers, guarded by ownership: it moves to one worker thread, which alone uses it.
public final class Detector: @unchecked Sendable {
    public let model: Model
    private let engine: InferenceEngine
    private var preprocessor: Preprocessor
    private var postprocessor: Postprocessor

    init(model: Model) throws(ModelError) {
        self.model = model
        engine = try InferenceEngine(network: model.network)
        let spec = model.network.spec
        preprocessor = Preprocessor(outputHeight: spec.input.height, outputWidth: spec.input.width,
                                    scale: spec.inputScale, offset: spec.inputOffset, encoding: model.network.inputEncoding)
        postprocessor = Postprocessor(anchors: model.anchors, classesWithBackground: spec.classesWithBackground,
                                      settings: model.settings, labels: model.labels)
    }

    /// Detections scoring at least `threshold`, highest score first.
    public func detect(_ pixels: PixelBuffer, threshold: Float) throws(ModelError) -> [Detection] {
        preprocessor.run(pixels, into: engine.encodedInput)
        try engine.run(inputEncoded: true)
        return postprocessor.detections(boxEncodings: engine.boxEncodings.baseAddress!, logits: engine.classLogits.baseAddress!,
                                        threshold: threshold)
    }

    /// The network's input tensor (NHWC f32), for running the bare network (`forward()` converts it to the
    /// network's own type first, as `detect` need not).
    public var input: UnsafeMutableBufferPointer<Float> {
        .init(start: engine.input, count: model.network.spec.input.elements)
    }

    /// Runs the bare network on `input` (for benchmarks and parity checks).
    public func forward() throws(ModelError) { try engine.run() }

    /// The raw box encodings (anchors x 4) and class logits (anchors x classes+1) of the last run.
    public var rawOutputs: (boxEncodings: UnsafeBufferPointer<Float>, classLogits: UnsafeBufferPointer<Float>) {
        (UnsafeBufferPointer(engine.boxEncodings), UnsafeBufferPointer(engine.classLogits))
    }
}
