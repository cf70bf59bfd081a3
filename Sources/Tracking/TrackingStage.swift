import Foundation
import Sink
import Synchronization
import Values

/// The tracker of every source of an ordered record stream (after `OrderedSink`): it puts track ids on the
/// records' detections and says what changed, source by source. Each source's records must come in frame order.
public final class TrackingStage: Sendable {
    /// Detections from this score up, below the report threshold, are what the tracker's second stage matches.
    public static let lowScoreFloor: Float = 0.1

    private struct Followed {
        var clock = SourceClock()
        var tracker: Tracker
    }

    private struct State {
        /// nil: sources not in `sources` are not tracked.
        var defaults: TrackingParameters?
        var sources: [String: TrackingParameters?] = [:]
        var followed: [String: Followed] = [:]
        /// Each source's next track id, kept when its tracker goes so ids are never reused.
        var nextIDs: [String: Int] = [:]
    }

    private let state: Mutex<State>

    /// `defaults` for every source not named in `sources`; nil turns tracking off.
    public init(defaults: TrackingParameters?, sources: [String: TrackingParameters?] = [:]) {
        state = Mutex(State(defaults: defaults, sources: sources))
    }

    /// New settings. A source whose settings changed ends its open tracks (reason `reload`) with its next record
    /// and is tracked afresh from there.
    public func configure(defaults: TrackingParameters?, sources: [String: TrackingParameters?]) {
        state.withLock {
            $0.defaults = defaults
            $0.sources = sources
        }
    }

    /// `record` with its confirmed detections' track ids, and the events its frame caused, to be sent before it.
    public func process(_ record: DetectionRecord) -> (record: DetectionRecord, events: [TrackEvent]) {
        var out = record
        out.lowScore = []
        let source = record.source
        let (ids, events) = state.withLock { state -> ([Int?], [TrackEvent]) in
            let parameters = state.sources[source] ?? state.defaults
            var events: [TrackEvent] = []
            var followed = state.followed.removeValue(forKey: source)
            if var running = followed?.tracker, running.parameters != parameters {
                events = running.finish(reason: .reload, time: record.time)
                followed = nil
            }
            guard let parameters else { return ([], events) }
            var current = followed ?? Followed(tracker: Tracker(source: source, parameters: parameters, firstID: state.nextIDs[source] ?? 1))
            let seconds = current.clock.seconds(pts: record.pts, captured: record.captureTime)
            let update = current.tracker.update(seconds: seconds, captured: record.captureTime, time: record.time, frame: record.frame,
                                                detections: record.detections, lowScore: record.lowScore)
            state.nextIDs[source] = current.tracker.nextID
            state.followed[source] = current
            return (update.trackIDs, events + update.events)
        }
        for (i, id) in ids.enumerated() { out.detections[i].trackID = id }
        return (out, events)
    }

    /// Ends `source`'s tracks (its source stopped); its next record starts a new tracker and clock.
    public func end(source: String, reason: TrackEndReason, time: Date = Date()) -> [TrackEvent] {
        state.withLock { state in
            guard var followed = state.followed.removeValue(forKey: source) else { return [] }
            return followed.tracker.finish(reason: reason, time: time)
        }
    }

    /// Ends every source's tracks, sources in name order.
    public func endAll(reason: TrackEndReason, time: Date = Date()) -> [TrackEvent] {
        let sources = state.withLock { $0.followed.keys.sorted() }
        return sources.flatMap { end(source: $0, reason: reason, time: time) }
    }
}
