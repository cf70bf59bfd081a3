/// How a source's tracker confirms, follows and ends tracks (docs/CONFIG.md, `tracking`). Every duration is in
/// seconds of the source's own clock, so a track behaves the same at 5 and at 30 frames per second.
public struct TrackingParameters: Sendable, Equatable {
    /// A track is confirmed (gets an id and an `object_start`) once it was seen in `minHits` frames within `windowSeconds`.
    public var minHits: Int
    public var windowSeconds: Double
    /// A confirmed track not seen for longer than this ends (`object_end`, reason `max_age`).
    public var maxAgeSeconds: Double
    /// The least overlap (intersection over union) between a track's predicted box and a detection that continues it.
    public var iouThreshold: Float

    public static let defaults = TrackingParameters(minHits: 3, windowSeconds: 1, maxAgeSeconds: 2, iouThreshold: 0.2)

    /// The ranges the config file and `detect --track-*` accept.
    public static let minHitsRange = 1...1_000
    public static let secondsRange = 0.01...3_600.0
    public static let iouRange: ClosedRange<Float> = 0.01...1

    public init(minHits: Int, windowSeconds: Double, maxAgeSeconds: Double, iouThreshold: Float) {
        self.minHits = minHits
        self.windowSeconds = windowSeconds
        self.maxAgeSeconds = maxAgeSeconds
        self.iouThreshold = iouThreshold
    }
}

/// The top-level `tracking` keys: whether to track, and how.
public struct TrackingSettings: Sendable, Equatable {
    public var enabled: Bool
    public var parameters: TrackingParameters

    public init(enabled: Bool = true, parameters: TrackingParameters = .defaults) {
        self.enabled = enabled
        self.parameters = parameters
    }

    /// What the tracker uses; nil when tracking is off.
    public var effective: TrackingParameters? { enabled ? parameters : nil }

    /// A source's settings: each key it sets wins over the top-level one.
    public func overridden(by overrides: TrackingOverrides) -> TrackingSettings {
        var result = self
        if let value = overrides.enabled { result.enabled = value }
        if let value = overrides.minHits { result.parameters.minHits = value }
        if let value = overrides.windowSeconds { result.parameters.windowSeconds = value }
        if let value = overrides.maxAgeSeconds { result.parameters.maxAgeSeconds = value }
        if let value = overrides.iouThreshold { result.parameters.iouThreshold = value }
        return result
    }
}

/// A source's own `tracking` keys (nil: the top-level value).
public struct TrackingOverrides: Sendable, Equatable {
    public var enabled: Bool?
    public var minHits: Int?
    public var windowSeconds: Double?
    public var maxAgeSeconds: Double?
    public var iouThreshold: Float?

    public init() {}
}
