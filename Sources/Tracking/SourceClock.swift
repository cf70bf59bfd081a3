import Foundation

/// A source's clock for its tracker, in seconds from its first frame: presentation timestamps where the
/// source has them (so a file tracks the same however fast it is read, and however many workers read it),
/// capture times otherwise. A timestamp missing, going back or jumping ahead by more than `maxJump`
/// (a spliced or restarted stream) advances the clock by the capture time elapsed instead.
public struct SourceClock: Sendable {
    public static let maxJump = 10.0

    private var last: (pts: Double?, captured: Date, seconds: Double)?

    public init() {}

    public mutating func seconds(pts: Double?, captured: Date) -> Double {
        guard let previous = last else {
            last = (pts, captured, 0)
            return 0
        }
        let step: Double
        if let pts, let before = previous.pts, pts >= before, pts - before <= Self.maxJump {
            step = pts - before
        } else {
            step = max(0, captured.timeIntervalSince(previous.captured))
        }
        let now = previous.seconds + step
        last = (pts, captured, now)
        return now
    }
}
