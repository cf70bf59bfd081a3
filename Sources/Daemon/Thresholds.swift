/// Minimum scores: one default and optional per-label overrides.
public struct Thresholds: Sendable, Equatable {
    public var defaultScore: Float
    public var perLabel: [String: Float]

    public init(defaultScore: Float, perLabel: [String: Float] = [:]) {
        self.defaultScore = defaultScore
        self.perLabel = perLabel
    }

    /// The lowest threshold any label uses: what the detector must keep before per-label filtering.
    var floor: Float { perLabel.values.reduce(defaultScore, min) }

    func accepts(label: String, score: Float) -> Bool { score >= (perLabel[label] ?? defaultScore) }
}
