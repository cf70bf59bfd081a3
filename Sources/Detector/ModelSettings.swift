import Foundation

/// SSD settings that a frozen graph does not carry in a form worth parsing: anchor generation,
/// box coding, non-max suppression and label names. Defaults are those of `ssdlite_mobilenet_v2_coco`;
/// a JSON sidecar next to the model (`model.json` beside `model.pb`) may override any of them.
public struct ModelSettings: Sendable, Equatable {
    public var minScale: Float = 0.2
    public var maxScale: Float = 0.95
    public var aspectRatios: [Float] = [1.0, 2.0, 0.5, 3.0, 0.3333]
    public var interpolatedScaleAspectRatio: Float = 1.0
    public var reduceBoxesInLowestLayer = true
    /// ty, tx, th, tw divisors of the Faster R-CNN box coder.
    public var boxScaleFactors: [Float] = [10, 10, 5, 5]
    /// Candidates at or below this score never enter non-max suppression.
    public var nmsScoreThreshold: Float = 1e-8
    public var nmsIoUThreshold: Float = 0.6
    public var maxDetectionsPerClass = 100
    public var maxDetections = 100
    /// Label names by class id (1-based, as the graph's `detection_classes`); nil keeps the COCO names.
    public var labels: [Int: String]? = nil

    public init() {}

    /// Settings for `modelPath`: defaults, overridden by the sidecar `<model without extension>.json` if present.
    public static func forModel(at modelPath: String) throws(ModelError) -> ModelSettings {
        let sidecar = (modelPath as NSString).deletingPathExtension + ".json"
        guard FileManager.default.fileExists(atPath: sidecar) else { return ModelSettings() }
        return try load(sidecar: sidecar)
    }

    public static func load(sidecar path: String) throws(ModelError) -> ModelSettings {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw .sidecar(path: path, reason: "not readable JSON (\(error.localizedDescription))")
        }
        guard let json = object as? [String: Any] else { throw .sidecar(path: path, reason: "top level is not an object") }
        var settings = ModelSettings()
        for (key, value) in json {
            func number() throws(ModelError) -> Float {
                guard let n = value as? NSNumber, !(value is Bool) else { throw .sidecar(path: path, reason: "'\(key)' must be a number") }
                return n.floatValue
            }
            func numbers(count: Int? = nil) throws(ModelError) -> [Float] {
                guard let list = value as? [NSNumber], !list.isEmpty, count == nil || list.count == count else {
                    throw .sidecar(path: path, reason: "'\(key)' must be a list of \(count.map(String.init) ?? "one or more") numbers")
                }
                return list.map(\.floatValue)
            }
            switch key {
            case "min_scale": settings.minScale = try number()
            case "max_scale": settings.maxScale = try number()
            case "aspect_ratios": settings.aspectRatios = try numbers()
            case "interpolated_scale_aspect_ratio": settings.interpolatedScaleAspectRatio = try number()
            case "reduce_boxes_in_lowest_layer":
                guard let flag = value as? Bool else { throw .sidecar(path: path, reason: "'\(key)' must be true or false") }
                settings.reduceBoxesInLowestLayer = flag
            case "box_scale_factors": settings.boxScaleFactors = try numbers(count: 4)
            case "nms_score_threshold": settings.nmsScoreThreshold = try number()
            case "nms_iou_threshold": settings.nmsIoUThreshold = try number()
            case "max_detections_per_class", "max_detections":
                let n = try number()
                guard n >= 1, n <= 100_000, n.rounded() == n else { throw .sidecar(path: path, reason: "'\(key)' must be a whole number from 1 to 100000") }
                if key == "max_detections" { settings.maxDetections = Int(n) } else { settings.maxDetectionsPerClass = Int(n) }
            case "labels":
                if let list = value as? [String] {
                    settings.labels = Dictionary(uniqueKeysWithValues: list.enumerated().map { ($0.offset + 1, $0.element) })
                } else if let map = value as? [String: String] {
                    var labels: [Int: String] = [:]
                    for (id, name) in map {
                        guard let id = Int(id) else { throw .sidecar(path: path, reason: "label id '\(id)' is not an integer") }
                        labels[id] = name
                    }
                    settings.labels = labels
                } else {
                    throw .sidecar(path: path, reason: "'labels' must be a list of names or an object of id to name")
                }
            default:
                throw .sidecar(path: path, reason: "unknown key '\(key)'")
            }
        }
        return settings
    }
}
