import Foundation
import Sink

extension TrackEvent {
    /// The event as one JSON line (docs/SCHEMA.md), with the trailing newline.
    public func jsonLine() -> String {
        var json = JSONLineWriter()
        switch self {
        case .start(let s):
            json.field("type", "object_start")
            json.field("source", s.source)
            json.field("track_id", s.trackID)
            json.field("label", s.label)
            json.field("time", RFC3339.format(s.time))
            json.field("first_seen", RFC3339.format(s.firstSeen))
            json.field("frame", s.frame)
            json.field("score", s.score)
            json.key("box")
            json.raw(Self.json(s.box))
        case .end(let e):
            json.field("type", "object_end")
            json.field("source", e.source)
            json.field("track_id", e.trackID)
            json.field("label", e.label)
            json.field("time", RFC3339.format(e.time))
            json.field("first_seen", RFC3339.format(e.firstSeen))
            json.field("last_seen", RFC3339.format(e.lastSeen))
            json.field("last_frame", e.lastFrame)
            json.field("duration_s", (e.durationSeconds * 1000).rounded() / 1000)
            json.field("best_score", e.bestScore)
            json.key("best_box")
            json.raw(Self.json(e.bestBox))
            json.field("reason", e.reason.rawValue)
        case .presence(let p):
            json.field("type", "presence")
            json.field("source", p.source)
            json.field("label", p.label)
            json.field("count", p.count)
            json.field("time", RFC3339.format(p.time))
        }
        return json.finish() + "\n"
    }

    private static func json(_ box: Box) -> String {
        var json = JSONLineWriter()
        json.field("xmin", box.xmin)
        json.field("ymin", box.ymin)
        json.field("xmax", box.xmax)
        json.field("ymax", box.ymax)
        return json.finish()
    }
}
