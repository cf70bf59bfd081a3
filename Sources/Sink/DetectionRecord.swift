import Foundation
import Values

/// One frame's detections, as every consumer sees them (docs/SCHEMA.md, schema version 1).
public struct DetectionRecord: Sendable {
    public static let schemaVersion = 1

    /// The source as the user named it.
    public var source: String
    /// 0-based index of the frame among those the source decoded.
    public var frame: Int
    /// 0-based index among this source's records (frames dropped under `latest` leave no gap here).
    public var seq: Int
    public var pts: Double?
    /// When the record was emitted.
    public var time: Date
    public var captureTime: Date
    public var width: Int
    public var height: Int
    /// Capture to emit, and the detector's own share of it.
    public var latencyMs: Double
    public var inferMs: Double
    /// Frames of this source dropped since its previous record.
    public var dropped: Int
    public var detections: [Detection]
    /// The frame's file, for a source of several files (a directory or an image sequence).
    public var file: String?
    /// Detections below the report threshold, kept only for the tracker (which empties this); never written.
    public var lowScore: [Detection] = []

    public init(source: String, frame: Int, seq: Int, pts: Double?, time: Date, captureTime: Date, width: Int, height: Int,
                latencyMs: Double, inferMs: Double, dropped: Int, detections: [Detection], file: String? = nil) {
        self.source = source
        self.frame = frame
        self.seq = seq
        self.pts = pts
        self.time = time
        self.captureTime = captureTime
        self.width = width
        self.height = height
        self.latencyMs = latencyMs
        self.inferMs = inferMs
        self.dropped = dropped
        self.detections = detections
        self.file = file
    }

    /// The record as one JSON line (with the trailing newline). Keys keep a fixed order.
    public func jsonLine() -> String {
        var json = JSONLineWriter()
        json.field("type", "detections")
        json.field("source", source)
        if let file { json.field("file", file) }
        json.field("frame", frame)
        json.field("seq", seq)
        json.field("pts", pts.map { ($0 * 1e6).rounded() / 1e6 })
        json.field("time", RFC3339.format(time))
        json.field("capture_time", RFC3339.format(captureTime))
        json.field("width", width)
        json.field("height", height)
        json.field("latency_ms", (latencyMs * 1000).rounded() / 1000)
        json.field("infer_ms", (inferMs * 1000).rounded() / 1000)
        json.field("dropped", dropped)
        json.key("detections")
        json.raw("[")
        for (i, d) in detections.enumerated() {
            if i > 0 { json.raw(",") }
            var item = JSONLineWriter()
            item.field("label", d.label)
            item.field("class_id", d.classID)
            item.field("score", d.score)
            var box = JSONLineWriter()
            box.field("xmin", d.xmin)
            box.field("ymin", d.ymin)
            box.field("xmax", d.xmax)
            box.field("ymax", d.ymax)
            item.key("box")
            item.raw(box.finish())
            if let track = d.trackID { item.field("track_id", track) }
            json.raw(item.finish())
        }
        json.raw("]")
        return json.finish() + "\n"
    }
}

/// Builds one JSON object with keys in the order written.
public struct JSONLineWriter {
    private var text = "{"
    private var first = true

    public init() {}

    public mutating func key(_ name: String) {
        if !first { text += "," }
        first = false
        text += Self.quoted(name) + ":"
    }

    public mutating func raw(_ json: String) { text += json }

    public mutating func field(_ name: String, _ value: String) { key(name); text += Self.quoted(value) }
    public mutating func field(_ name: String, _ value: Int) { key(name); text += String(value) }
    public mutating func field(_ name: String, _ value: Float) { key(name); text += value.isFinite ? "\(value)" : "null" }
    public mutating func field(_ name: String, _ value: Double?) {
        key(name)
        if let value, value.isFinite { text += "\(value)" } else { text += "null" }
    }
    public mutating func field(_ name: String, _ values: [String]) {
        key(name)
        text += "[" + values.map(Self.quoted).joined(separator: ",") + "]"
    }

    public func finish() -> String { text + "}" }

    public static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
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
}
