import Foundation
import Values

/// Activation ranges for int8: per convolution output, the largest magnitude its 8-bit values represent, measured
/// by `sightline calibrate` on sample frames with the f32 network. Stored as JSON beside the model
/// (`model.calibration.json` next to `model.pb`) and tied to the model's bytes by a fingerprint.
public struct Calibration: Sendable, Equatable {
    public static let formatVersion = 1

    /// FNV-1a 64 of the model file, in hex.
    public var modelFingerprint: String
    /// How ranges were chosen from the statistics (e.g. "mse").
    public var method: String
    public var frames: Int
    /// Convolution node name -> range (> 0).
    public var ranges: [String: Float]

    public init(modelFingerprint: String, method: String, frames: Int, ranges: [String: Float]) {
        self.modelFingerprint = modelFingerprint
        self.method = method
        self.frames = frames
        self.ranges = ranges
    }

    /// `model.calibration.json` beside `model.pb`.
    public static func path(forModel modelPath: String) -> String {
        (modelPath as NSString).deletingPathExtension + ".calibration.json"
    }

    static func fingerprint(_ data: Data) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        data.withUnsafeBytes { bytes in
            for byte in bytes {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01b3
            }
        }
        return String(hash, radix: 16)
    }

    /// Reads a calibration file; every problem is an error naming the file and what was wrong.
    public static func load(path: String) throws(ModelError) -> Calibration {
        if let refusal = FileType.refusalToRead(path) { throw .calibration(path: path, reason: refusal) }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw .calibration(path: path, reason: "not readable JSON (\(error.localizedDescription))")
        }
        guard let json = object as? [String: Any] else { throw .calibration(path: path, reason: "top level is not an object") }
        guard let version = json["sightline_calibration"] as? Int else {
            throw .calibration(path: path, reason: "not a Sightline calibration file (no \"sightline_calibration\" version)")
        }
        guard version == formatVersion else {
            throw .calibration(path: path, reason: "format version \(version), this build reads \(formatVersion)")
        }
        guard let fingerprint = json["model_fnv1a64"] as? String, let method = json["method"] as? String,
              let frames = json["frames"] as? Int, let table = json["ranges"] as? [String: Any] else {
            throw .calibration(path: path, reason: "needs \"model_fnv1a64\" (string), \"method\" (string), \"frames\" (integer) and \"ranges\" (object)")
        }
        var ranges: [String: Float] = [:]
        for (name, value) in table {
            // JSON true/false arrive as NSNumbers too, of ObjC type "c".
            guard let number = value as? NSNumber, String(cString: number.objCType) != "c",
                  number.doubleValue.isFinite, number.doubleValue > 0 else {
                throw .calibration(path: path, reason: "range of '\(name)' is \(value), not a positive number")
            }
            ranges[name] = number.floatValue
        }
        return Calibration(modelFingerprint: fingerprint, method: method, frames: frames, ranges: ranges)
    }

    public func write(to path: String) throws {
        let object: [String: Any] = ["sightline_calibration": Self.formatVersion, "model_fnv1a64": modelFingerprint,
                                     "method": method, "frames": frames, "ranges": ranges.mapValues(Double.init)]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try (data + Data("\n".utf8)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Per tensor of `spec`, the range int8 quantizes it over. The input's comes from the preprocessor's
    /// normalisation; the head outputs stay f32. Throws if the file was made for other bytes or lacks a tensor.
    func activationRanges(for spec: NetworkSpec, modelFingerprint model: String, path: String) throws(ModelError) -> [Float] {
        guard modelFingerprint == model else {
            throw .calibration(path: path, reason: "made for another model (fingerprint \(modelFingerprint), this model's is \(model))")
        }
        let known = Set(spec.convolutions.map(\.name))
        if let stranger = ranges.keys.sorted().first(where: { !known.contains($0) }) {
            throw .calibration(path: path, reason: "names tensor '\(stranger)', which this model does not have")
        }
        var outputs = Set<Int>()
        for head in spec.heads { outputs.formUnion([head.boxEncodings, head.classLogits]) }
        var result = [Float](repeating: 1, count: spec.tensors.count)
        result[0] = max(abs(spec.inputOffset), abs(255 * spec.inputScale + spec.inputOffset))
        for conv in spec.convolutions where !outputs.contains(conv.output) {
            guard let range = ranges[conv.name] else {
                throw .calibration(path: path, reason: "has no range for '\(conv.name)'")
            }
            result[conv.output] = range
        }
        return result
    }
}
