import Foundation

/// A box normalized to [0, 1] of the frame: x across, y down.
public struct Box: Sendable, Equatable {
    public var xmin: Float, ymin: Float, xmax: Float, ymax: Float

    public init(xmin: Float, ymin: Float, xmax: Float, ymax: Float) {
        self.xmin = xmin
        self.ymin = ymin
        self.xmax = xmax
        self.ymax = ymax
    }
}

/// Why a track ended.
public enum TrackEndReason: String, Sendable, Equatable {
    /// Not seen for `max_age_seconds`.
    case maxAge = "max_age"
    /// Its source failed, stalled or its live stream ended.
    case sourceDown = "source_down"
    /// Its file (or image sequence) ended.
    case endOfFile = "end_of_file"
    /// A reload restarted or removed its source.
    case reload
    /// The daemon is stopping.
    case shutdown
}

/// A track was confirmed.
public struct ObjectStart: Sendable, Equatable {
    public var source: String
    public var trackID: Int
    public var label: String
    /// The time of the record that confirmed it.
    public var time: Date
    /// Capture time of the first frame it was seen in.
    public var firstSeen: Date
    /// The frame that confirmed it, and its box and score there.
    public var frame: Int
    public var box: Box
    public var score: Float
}

/// A confirmed track ended.
public struct ObjectEnd: Sendable, Equatable {
    public var source: String
    public var trackID: Int
    public var label: String
    public var time: Date
    public var firstSeen: Date
    /// Capture time of the last frame it was seen in (by a reported or a low-score detection).
    public var lastSeen: Date
    public var lastFrame: Int
    /// From first to last seen, on the source's clock.
    public var durationSeconds: Double
    public var bestScore: Float
    public var bestBox: Box
    public var reason: TrackEndReason
}

/// The number of confirmed tracks of one label on one source changed.
public struct Presence: Sendable, Equatable {
    public var source: String
    public var label: String
    public var count: Int
    public var time: Date
}

/// What a tracker says besides the track ids it puts on detections, in the order it happened.
public enum TrackEvent: Sendable, Equatable {
    case start(ObjectStart)
    case end(ObjectEnd)
    case presence(Presence)
}
