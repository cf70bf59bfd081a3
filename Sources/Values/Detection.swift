/// One detected object. Box coordinates are normalized to [0, 1] of the frame: x across, y down.
public struct Detection: Sendable, Equatable {
    public var classID: Int
    public var label: String
    public var score: Float
    public var xmin: Float, ymin: Float, xmax: Float, ymax: Float
    /// The confirmed track it belongs to, when a tracker follows its source (unique per source, never reused).
    public var trackID: Int?

    public init(classID: Int, label: String, score: Float, xmin: Float, ymin: Float, xmax: Float, ymax: Float, trackID: Int? = nil) {
        self.classID = classID
        self.label = label
        self.score = score
        self.xmin = xmin
        self.ymin = ymin
        self.xmax = xmax
        self.ymax = ymax
        self.trackID = trackID
    }
}
