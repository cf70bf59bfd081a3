import Values

/// What a tracker says besides the track ids it puts on detections, in the order it happened.
public enum TrackEvent: Sendable, Equatable {
    case start(Record.ObjectStart)
    case end(Record.ObjectEnd)
    case presence(Record.Presence)

    /// The event as the record it is sent as.
    public var record: Record {
        switch self {
        case .start(let start): .objectStart(start)
        case .end(let end): .objectEnd(end)
        case .presence(let presence): .presence(presence)
        }
    }
}
