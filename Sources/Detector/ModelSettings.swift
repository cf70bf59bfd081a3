import Foundation
import Values

/// SSD settings that a frozen graph does not carry in a form worth parsing: anchor generation,
/// box coding, non-max suppression and label names. Defaults are those of `ssdlite_mobilenet_v2_coco`;
/// a JSON sidecar next to the model (`model.json` beside `model.pb`) may override any of them.
public struct ModelSettings: Sendable, Equatable {

    public var minScale: Float = 0.2
    public var maxScale: Float = 0.95
    public var aspectRatios: [Float] = [1.0, 2.0, 0.5, 3.0, 0.3333]
    public var interpolatedScaleAspectRatio: Float = 1.0
    public var reduceBoxesInLowestLayer = true
    /// The anchor generator's `base_anchor_size` as [height, width], before the non-square input correction.
    public var baseAnchorSize: SIMD2<Float> = [1.0, 1.0]
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
        if let refusal = FileType.refusalToRead(path) { throw .sidecar(path: path, reason: refusal) }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .sidecar(path: path, reason: "not readable (\(error.localizedDescription))")
        }
        return try parse(sidecar: data, path: path)
    }

    /// Parses a sidecar's JSON; `path` names it in errors.
    static func parse(sidecar data: Data, path: String) throws(ModelError) -> ModelSettings {
        do {
            return try JSONDecoder().decode(Sidecar.self, from: data).settings
        } catch let problem as Sidecar.Problem {
            throw .sidecar(path: path, reason: problem.reason)
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            throw .sidecar(path: path, reason: "top level is not an object")
        } catch {
            throw .sidecar(path: path, reason: "not readable JSON (\(error.localizedDescription))")
        }
    }

    /// The sidecar's JSON, decoded with types checked per key: `0` is a number and `true` is not
    /// (JSONSerialization on Linux cannot tell them apart).
    private struct Sidecar: Decodable {
        struct Problem: Error { let reason: String }

        struct Key: CodingKey {
            let stringValue: String
            init(stringValue: String) { self.stringValue = stringValue }
            var intValue: Int? { nil }
            init?(intValue: Int) { nil }
        }

        var settings = ModelSettings()

        init(from decoder: Decoder) throws {
            let json = try decoder.container(keyedBy: Key.self)
            func decode<T: Decodable>(_ key: Key, as type: T.Type, _ what: String) throws -> T {
                do {
                    return try json.decode(T.self, forKey: key)
                } catch {
                    throw Problem(reason: "'\(key.stringValue)' must be \(what)")
                }
            }
            func numbers(_ key: Key, count: Int? = nil) throws -> [Float] {
                let what = "a list of \(count.map(String.init) ?? "one or more") numbers"
                let list = try decode(key, as: [Float].self, what)
                guard !list.isEmpty, count == nil || list.count == count else { throw Problem(reason: "'\(key.stringValue)' must be \(what)") }
                return list
            }
            for key in json.allKeys {
                switch key.stringValue {
                case "min_scale": settings.minScale = try decode(key, as: Float.self, "a number")
                case "max_scale": settings.maxScale = try decode(key, as: Float.self, "a number")
                case "aspect_ratios": settings.aspectRatios = try numbers(key)
                case "interpolated_scale_aspect_ratio": settings.interpolatedScaleAspectRatio = try decode(key, as: Float.self, "a number")
                case "reduce_boxes_in_lowest_layer": settings.reduceBoxesInLowestLayer = try decode(key, as: Bool.self, "true or false")
                case "base_anchor_size":
                    let size = try numbers(key, count: 2)
                    guard size.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw Problem(reason: "'base_anchor_size' must be two positive numbers (height, width)") }
                    settings.baseAnchorSize = SIMD2(size[0], size[1])
                case "box_scale_factors": settings.boxScaleFactors = try numbers(key, count: 4)
                case "nms_score_threshold": settings.nmsScoreThreshold = try decode(key, as: Float.self, "a number")
                case "nms_iou_threshold": settings.nmsIoUThreshold = try decode(key, as: Float.self, "a number")
                case "max_detections_per_class", "max_detections":
                    let what = "a whole number from 1 to 100000"
                    let n = try decode(key, as: Double.self, what)
                    guard n >= 1, n <= 100_000, n.rounded() == n else { throw Problem(reason: "'\(key.stringValue)' must be \(what)") }
                    if key.stringValue == "max_detections" { settings.maxDetections = Int(n) } else { settings.maxDetectionsPerClass = Int(n) }
                case "labels":
                    if let list = try? json.decode([String].self, forKey: key) {
                        if let empty = list.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
                            throw Problem(reason: "'labels' has an empty name for class id \(empty + 1)")
                        }
                        settings.labels = Dictionary(uniqueKeysWithValues: list.enumerated().map { ($0.offset + 1, $0.element) })
                    } else if let map = try? json.decode([String: String].self, forKey: key) {
                        var labels: [Int: String] = [:]
                        for (id, name) in map {
                            guard let id = Int(id) else { throw Problem(reason: "label id '\(id)' is not an integer") }
                            guard id >= 1 else { throw Problem(reason: "label id '\(id)' is below 1: class ids start at 1") }
                            guard !name.trimmingCharacters(in: .whitespaces).isEmpty else {
                                throw Problem(reason: "'labels' has an empty name for class id \(id)")
                            }
                            labels[id] = name
                        }
                        settings.labels = labels
                    } else {
                        throw Problem(reason: "'labels' must be a list of names or an object of id to name")
                    }
                default:
                    throw Problem(reason: "unknown key '\(key.stringValue)'")
                }
            }
        }
    }
}
