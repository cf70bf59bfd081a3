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

    /// After SIGHUP: what the new configuration changed (`status: "applied"`), or why it was refused and the
    /// running configuration kept (`status: "refused"`, with `errors`).
    public static func reload(applied changes: ReloadChanges, time: Date = Date()) -> String {
        var json = JSONLineWriter()
        json.field("type", "reload")
        json.field("time", RFC3339.format(time))
        json.field("status", "applied")
        json.field("changed", changes.changed)
        json.field("added", changes.added)
        json.field("removed", changes.removed)
        json.key("restarted")
        json.raw("[" + changes.restarted.map { restart in
            var item = JSONLineWriter()
            item.field("source", restart.source)
            item.field("reason", restart.reason)
            return item.finish()
        }.joined(separator: ",") + "]")
        json.field("needs_restart", changes.needsRestart)
        return json.finish() + "\n"
    }

    public static func reload(refused errors: [String], time: Date = Date()) -> String {
        var json = JSONLineWriter()
        json.field("type", "reload")
        json.field("time", RFC3339.format(time))
        json.field("status", "refused")
        json.field("errors", errors)
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

/// What a reload changed, as the `reload` record reports it.
public struct ReloadChanges: Sendable, Equatable {
    public struct Restart: Sendable, Equatable {
        public var source: String
        /// e.g. `input, fps_limit changed`.
        public var reason: String
        public init(source: String, reason: String) {
            self.source = source
            self.reason = reason
        }
    }

    /// Config keys whose new values are in effect, e.g. `threshold`, `sources.door.fps_limit`.
    public var changed: [String] = []
    /// Sources started or stopped because they were added to or removed from the file.
    public var added: [String] = []
    public var removed: [String] = []
    /// Sources closed and reopened to apply their new settings.
    public var restarted: [Restart] = []
    /// Changed keys that only a restart of the daemon applies (the running values stay).
    public var needsRestart: [String] = []

    public init() {}
}
