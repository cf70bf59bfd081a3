/// Records per second over the last `window`, or since the meter started if that is sooner: a source slower
/// than one record per status interval still reads its true rate, not 0 or 0.5.
struct RateMeter {
    static let window = 30

    private let started: ContinuousClock.Instant
    /// Records per whole second since `started`, the last `window` seconds in a ring.
    private var buckets = [Int](repeating: 0, count: RateMeter.window)
    private var newest = 0

    init(started: ContinuousClock.Instant = .now) { self.started = started }

    mutating func count(at now: ContinuousClock.Instant) {
        advance(to: now)
        buckets[newest % Self.window] += 1
    }

    mutating func perSecond(at now: ContinuousClock.Instant) -> Double {
        advance(to: now)
        // The buckets cover the whole seconds before the newest one and the part of it gone by.
        let sinceStart = (now - started) / .seconds(1)
        let covered = min(sinceStart, Double(Self.window - 1) + (sinceStart - Double(newest)))
        return Double(buckets.reduce(0, +)) / max(covered, 1)
    }

    private mutating func advance(to now: ContinuousClock.Instant) {
        let second = Int((now - started) / .seconds(1))
        guard second > newest else { return }
        for s in (newest + 1)...min(second, newest + Self.window) { buckets[s % Self.window] = 0 }
        newest = second
    }
}
