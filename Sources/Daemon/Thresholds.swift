/// Minimum scores: one default and optional per-label overrides.
public struct Thresholds: Sendable, Equatable {
    public var defaultScore: Float
    public var perLabel: [String: Float]
    /// Detections scoring at least this but below their threshold are kept for a tracker (`Record.Detections.lowScore`),
    /// never reported; nil keeps none.
    public var lowScoreFloor: Float?

    public init(defaultScore: Float, perLabel: [String: Float] = [:], lowScoreFloor: Float? = nil) {
        self.defaultScore = defaultScore
        self.perLabel = perLabel
        self.lowScoreFloor = lowScoreFloor
    }

    /// The lowest score any label uses or a tracker keeps: what the detector must keep before per-label filtering.
    var floor: Float { perLabel.values.reduce(min(defaultScore, lowScoreFloor ?? 1), min) }

    func accepts(label: String, score: Float) -> Bool { score >= (perLabel[label] ?? defaultScore) }

    /// What a source with `overrides` uses. The most specific setting wins: the source's per-label score, then
    /// the source's `threshold`, then the top-level per-label score, then the top-level `threshold`.
    public func overridden(by overrides: SourceThresholds) -> Thresholds {
        if let score = overrides.defaultScore {
            return Thresholds(defaultScore: score, perLabel: overrides.perLabel, lowScoreFloor: lowScoreFloor)
        }
        return Thresholds(defaultScore: defaultScore, perLabel: perLabel.merging(overrides.perLabel) { $1 }, lowScoreFloor: lowScoreFloor)
    }
}

/// A source's own `threshold` and `thresholds`, which win over the top-level ones (see `Thresholds.overridden`).
public struct SourceThresholds: Sendable, Equatable {
    public var defaultScore: Float?
    public var perLabel: [String: Float]

    public init(defaultScore: Float? = nil, perLabel: [String: Float] = [:]) {
        self.defaultScore = defaultScore
        self.perLabel = perLabel
    }
}
