/// Why a model could not be loaded. Messages name the file and the first thing that did not fit.
public enum ModelError: Error, CustomStringConvertible, Sendable {
    case unreadable(path: String, reason: String)
    case malformed(String)
    case unsupported(node: String, op: String, reason: String)
    case notSSD(String)
    case sidecar(path: String, reason: String)
    /// A label file (`labels:`, `--labels`) that cannot be read or has no labels.
    case labels(path: String, reason: String)
    case engine(String)
    case calibration(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read model \(path): \(reason)"
        case .malformed(let reason): "malformed model: \(reason)"
        case .unsupported(let node, let op, let reason): "unsupported model: node '\(node)' (op \(op)) \(reason)"
        case .notSSD(let reason): "not an SSD or SSDLite MobileNetV1/V2 detection graph: \(reason)"
        case .sidecar(let path, let reason): "bad model settings file \(path): \(reason)"
        case .labels(let path, let reason): "cannot read labels \(path): \(reason)"
        case .engine(let reason): "inference engine: \(reason)"
        case .calibration(let path, let reason): "bad calibration file \(path): \(reason)"
        }
    }
}
