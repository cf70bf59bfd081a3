import Foundation
import Values

/// Class names by 1-based class id, as TF Object Detection API label maps number them.
public struct Labels: Sendable, Equatable {
    public let names: [Int: String]

    public init(names: [Int: String]) { self.names = names }

    /// The name for `classID`, or `class_<id>` where the map has none.
    public func name(for classID: Int) -> String { names[classID] ?? "class_\(classID)" }

    /// Reads a label file: a TF `label_map.pbtxt` (`item { id: 1 display_name: "person" }`),
    /// or plain text with one name per line for ids 1, 2, 3... Every label has a name: an empty one is refused.
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
        var names = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }[...]
        // Blank lines at the end name no id; one before the last name would leave its id (its line number) unnamed.
        while names.last == "" { names.removeLast() }
        guard !names.isEmpty else { throw .labels(path: path, reason: "no labels") }
        if let blank = names.firstIndex(of: "") {
            throw .labels(path: path, reason: "line \(blank + 1) is blank: line N names class id N, so every line up to the last "
                              + "needs a name (a label_map.pbtxt can leave ids out)")
        }
        return Labels(names: Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.offset + 1, $0.element) }))
    }

    /// Items as the TF Object Detection API's `label_map_util` validates them: an id below 0 is refused, id 0 is only
    /// the background (skipped: the model's classes start at 1). An id given twice is refused too (the API would keep
    /// the first without a word), and so is an empty name. Problems name the line the item starts on.
    private static func parsePbtxt(_ text: String, path: String) throws(ModelError) -> Labels {
        var names: [Int: String] = [:]
        var lineOfID: [Int: Int] = [:]
        let starts = text.ranges(of: "item")
        var line = 1
        var counted = text.startIndex
        for (index, start) in starts.enumerated() {
            line += text[counted..<start.lowerBound].count(where: \.isNewline)
            counted = start.lowerBound
            let item = text[start.upperBound..<(index + 1 < starts.count ? starts[index + 1].lowerBound : text.endIndex)]
            func refuse(_ reason: String) -> ModelError { .labels(path: path, reason: "line \(line): \(reason)") }
            func field(_ key: String) -> String? {
                // The key itself, not the end of a longer one (`name` in `display_name`).
                guard let range = item.ranges(of: key + ":").first(where: { range in
                    guard range.lowerBound > item.startIndex else { return true }
                    let before = item[item.index(before: range.lowerBound)]
                    return !(before.isLetter || before.isNumber || before == "_")
                }) else { return nil }
                let rest = item[range.upperBound...].drop(while: { $0 == " " || $0 == "\t" })
                if let quote = rest.first, quote == "\"" || quote == "'" {
                    return String(rest.dropFirst().prefix(while: { $0 != quote }))
                }
                return String(rest.prefix(while: { !$0.isWhitespace && $0 != "}" }))
            }
            guard let idText = field("id"), let id = Int(idText) else { throw refuse("an item has no integer id") }
            guard id >= 0 else { throw refuse("id \(id) is negative: class ids start at 1") }
            guard let name = field("display_name") ?? field("name") else { throw refuse("item \(id) has no name") }
            if id == 0 {
                // As label_map_util: the background may be so named by either field.
                guard field("name") == "background" || field("display_name") == "background" else { throw refuse("id 0 is the background's, not \"\(name)\": class ids start at 1") }
                continue
            }
            guard !name.trimmingCharacters(in: .whitespaces).isEmpty else { throw refuse("item \(id) has an empty name") }
            if let first = lineOfID[id] { throw refuse("id \(id) is given more than once (first at line \(first))") }
            names[id] = name
            lineOfID[id] = line
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
