import Foundation
import Values

/// Class names by 1-based class id, as TF Object Detection API label maps number them.
public struct Labels: Sendable, Equatable {
    public let names: [Int: String]

    public init(names: [Int: String]) { self.names = names }

    /// The name for `classID`, or `class_<id>` where the map has none.
    public func name(for classID: Int) -> String { names[classID] ?? "class_\(classID)" }

    /// Reads a label file: a TF `label_map.pbtxt` (`item { id: 1 display_name: "person" }`),
    /// or plain text with one name per line for ids 1, 2, 3...
    public static func load(path: String) throws(ModelError) -> Labels {
        guard FileManager.default.fileExists(atPath: path) else { throw .labels(path: path, reason: "no such file") }
        if let refusal = FileType.refusalToRead(path) { throw .labels(path: path, reason: refusal) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .labels(path: path, reason: "permission denied")
        }
        return try parse(data, path: path)
    }

    /// Parses the contents of a label file; `path` names it in errors.
    static func parse(_ data: Data, path: String) throws(ModelError) -> Labels {
        guard let text = String(data: data, encoding: .utf8) else { throw .labels(path: path, reason: "not a UTF-8 text file") }
        if text.contains("item") && text.contains("{") { return try parsePbtxt(text, path: path) }
        // Split on every line break: "\r\n" is one Character, so splitting on "\n" alone would keep CRLF files whole.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        let names = lines.last == "" ? lines.dropLast() : lines[...]
        guard !names.isEmpty else { throw .labels(path: path, reason: "no labels") }
        return Labels(names: Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.offset + 1, $0.element) }))
    }

    private static func parsePbtxt(_ text: String, path: String) throws(ModelError) -> Labels {
        var names: [Int: String] = [:]
        for item in text.components(separatedBy: "item").dropFirst() {
            func field(_ key: String) -> String? {
                guard let range = item.range(of: key + ":") else { return nil }
                let rest = item[range.upperBound...].drop(while: { $0 == " " || $0 == "\t" })
                if rest.first == "\"" {
                    return String(rest.dropFirst().prefix(while: { $0 != "\"" }))
                }
                return String(rest.prefix(while: { !$0.isWhitespace && $0 != "}" }))
            }
            guard let idText = field("id"), let id = Int(idText) else { throw .labels(path: path, reason: "an item has no integer id") }
            guard let name = field("display_name") ?? field("name") else { throw .labels(path: path, reason: "item \(id) has no name") }
            names[id] = name
        }
        guard !names.isEmpty else { throw .labels(path: path, reason: "no items") }
        return Labels(names: names)
    }

    /// Classes of a COCO-trained graph (ids 1...90, ten of them unused).
    public static let cocoClassCount = 90

    /// COCO's label map as the TF Object Detection API ships it (`mscoco_label_map.pbtxt`): 80 names over ids 1...90.
    public static let coco = Labels(names: [
        1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train", 8: "truck", 9: "boat",
        10: "traffic light", 11: "fire hydrant", 13: "stop sign", 14: "parking meter", 15: "bench", 16: "bird", 17: "cat",
        18: "dog", 19: "horse", 20: "sheep", 21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe", 27: "backpack",
        28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee", 35: "skis", 36: "snowboard", 37: "sports ball",
        38: "kite", 39: "baseball bat", 40: "baseball glove", 41: "skateboard", 42: "surfboard", 43: "tennis racket",
        44: "bottle", 46: "wine glass", 47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
        54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza", 60: "donut", 61: "cake",
        62: "chair", 63: "couch", 64: "potted plant", 65: "bed", 67: "dining table", 70: "toilet", 72: "tv", 73: "laptop",
        74: "mouse", 75: "remote", 76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster", 81: "sink",
        82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear", 89: "hair drier",
        90: "toothbrush",
    ])
}
