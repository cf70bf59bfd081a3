import Foundation

/// The daemon's records other than `detections` (docs/SCHEMA.md).
public enum ServiceRecord {
    /// First line every subscriber receives. `up` names the sources delivering frames right now, so a late
    /// subscriber knows each one's state without waiting for its next `source_up`/`source_down`.
    public static func hello(version: String, model: String, precision: String, labels: [String], sources: [String],
                             up: Set<String> = [], time: Date = Date()) -> String {
        var json = JSONLineWriter()
        json.field("type", "hello")
        json.field("schema", DetectionRecord.schemaVersion)
        json.field("version", version)
        json.field("time", RFC3339.format(time))
        json.field("model", model)
        json.field("precision", precision)
        json.field("labels", labels)
        json.field("sources", sources)
        var states = JSONLineWriter()
        for name in sources { states.field(name, up.contains(name) ? "up" : "down") }
        json.key("source_states")
        json.raw(states.finish())
        return json.finish() + "\n"
    }

    /// Sent for a source after `heartbeat_seconds` with nothing else sent for it.
    public static func heartbeat(source: String, up: Bool, fps: Double, droppedTotal: Int, time: Date = Date()) -> String {
        var json = JSONLineWriter()
        json.field("type", "heartbeat")
        json.field("source", source)
        json.field("time", RFC3339.format(time))
        json.field("state", up ? "up" : "down")
        json.field("fps", (fps * 100).rounded() / 100)
        json.field("dropped_total", droppedTotal)
        return json.finish() + "\n"
    }

    public static func sourceDown(source: String, reason: String, retryInSeconds: Double?, time: Date = Date()) -> String {
        var json = JSONLineWriter()
        json.field("type", "source_down")
        json.field("source", source)
        json.field("time", RFC3339.format(time))
        json.field("reason", reason)
        json.field("retry_in_s", retryInSeconds.map { ($0 * 10).rounded() / 10 })
        return json.finish() + "\n"
    }

    public static func sourceUp(source: String, input: String, time: Date = Date()) -> String {
        var json = JSONLineWriter()
        json.field("type", "source_up")
        json.field("source", source)
        json.field("time", RFC3339.format(time))
        json.field("input", input)
        return json.finish() + "\n"
    }
}
