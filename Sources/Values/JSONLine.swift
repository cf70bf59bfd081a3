import Foundation

/// Builds one JSON object with keys in the order written; the keys are `Key`'s, so a record writes only its own.
/// Hand-written rather than `JSONEncoder`: a `detections` record is written for every frame.
struct JSONLineWriter<Key: CodingKey> {
    private var text: String
    private var first: Bool

    init() {
        text = "{"
        first = true
    }

    /// Starts a record: `{"type":"<type>"`.
    init(type: String) {
        text = #"{"type":"# + Self.quoted(type)
        first = false
    }

    mutating func key(_ key: Key) {
        if !first { text += "," }
        first = false
        text += Self.quoted(key.stringValue) + ":"
    }

    mutating func raw(_ json: String) { text += json }

    mutating func field(_ key: Key, _ value: String) { self.key(key); text += Self.quoted(value) }
    mutating func field(_ key: Key, _ value: Int) { self.key(key); text += String(value) }
    mutating func field(_ key: Key, _ value: Float) { self.key(key); text += value.isFinite ? "\(value)" : "null" }
    mutating func field(_ key: Key, _ value: Double?) {
        self.key(key)
        if let value, value.isFinite { text += "\(value)" } else { text += "null" }
    }
    mutating func field(_ key: Key, _ values: [String]) {
        self.key(key)
        text += "[" + values.map(Self.quoted).joined(separator: ",") + "]"
    }
    /// The list, or null.
    mutating func field(_ key: Key, _ values: [String]?) {
        if let values { field(key, values) } else { self.key(key); text += "null" }
    }
    /// An array of objects, each written by `write`.
    mutating func field<Element, ItemKey>(_ key: Key, _ items: [Element], as _: ItemKey.Type,
                                          _ write: (Element, inout JSONLineWriter<ItemKey>) -> Void) {
        self.key(key)
        text += "["
        for (i, element) in items.enumerated() {
            if i > 0 { text += "," }
            var item = JSONLineWriter<ItemKey>()
            write(element, &item)
            text += item.finish()
        }
        text += "]"
    }

    func finish() -> String { text + "}" }

    /// `s` as a JSON string. Every control character is escaped, DEL and C1 (U+0080-U+009F) too, which JSON allows
    /// raw: a line read on a terminal (`tail --raw`, `detect`) must not be able to drive it.
    static func quoted(_ s: String) -> String {
        // Most text (keys, labels, times) needs no escape: one pass over its bytes instead of appending scalar by scalar.
        // (C1 characters are 0xC2 0x80-0x9F in UTF-8; other text with a 0xC2 byte takes the slow path, unchanged.)
        if s.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F && $0 != 0xC2 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            return "\"" + s + "\""
        }
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.properties.generalCategory == .control:  // C0, DEL and C1
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// A key named at run time (a source's name in `hello`'s `source_states`).
struct NameKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// RFC 3339 UTC timestamps with milliseconds, e.g. `2026-11-22T22:15:03.123Z`.
public enum RFC3339 {
    public static func format(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        var seconds = time_t(t.rounded(.down))
        var millis = Int(((t - Double(seconds)) * 1000).rounded())
        if millis == 1000 {
            seconds += 1
            millis = 0
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }

    /// The instant `format` wrote (`YYYY-MM-DDTHH:MM:SS.mmmZ`; the fraction may have 0-9 digits), or nil.
    public static func parse(_ text: String) -> Date? {
        let chars = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= chars.count else { return nil }
            var value = 0
            for c in chars[from..<from + count] {
                guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(c - UInt8(ascii: "0"))
            }
            return value
        }
        func char(_ at: Int, _ expected: Character) -> Bool { at < chars.count && chars[at] == expected.asciiValue }
        guard let year = number(0, 4), char(4, "-"), let month = number(5, 2), char(7, "-"), let day = number(8, 2),
              char(10, "T"), let hour = number(11, 2), char(13, ":"), let minute = number(14, 2), char(16, ":"),
              let second = number(17, 2), (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60,
              second < 61 else { return nil }
        var at = 19
        var fraction = 0.0
        if char(at, ".") {
            at += 1
            let start = at
            while at < chars.count, at - start < 9, let digit = number(at, 1) {
                fraction += Double(digit) / pow(10, Double(at - start + 1))
                at += 1
            }
            guard at > start else { return nil }
        }
        guard char(at, "Z"), at + 1 == chars.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        // Whole milliseconds divided once, so a parsed `format` output is the Date that was formatted, to the millisecond.
        let millis = Double(seconds) * 1000 + (fraction * 1000).rounded()
        return Date(timeIntervalSince1970: millis / 1000)
    }
}
