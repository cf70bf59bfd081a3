import Foundation

/// Puts records back in frame order per source although workers finish out of order, stamps the
/// emit time and capture-to-emit latency, and hands them on in order, one at a time.
public final class OrderedSink: @unchecked Sendable {
    private let lock = NSLock()
    private var nextOrder: [Int: Int] = [:]
    /// Per lane, records waiting for their turn; nil marks a frame that produced no record.
    private var pending: [Int: [Int: (DetectionRecord, ContinuousClock.Instant)?]] = [:]
    private let emit: @Sendable (DetectionRecord) -> Void

    /// `emit` is called under the sink's lock, in order per source.
    public init(emit: @escaping @Sendable (DetectionRecord) -> Void) {
        self.emit = emit
    }

    /// Accepts the record of the `order`-th dispatched frame of source `lane`.
    public func submit(_ record: DetectionRecord, lane: Int, order: Int, capturedAt: ContinuousClock.Instant) {
        accept((record, capturedAt), lane: lane, order: order)
    }

    /// Gives up the `order`-th slot of `lane` (its frame failed), so later records are not held back.
    public func skip(lane: Int, order: Int) {
        accept(nil, lane: lane, order: order)
    }

    private func accept(_ entry: (DetectionRecord, ContinuousClock.Instant)?, lane: Int, order: Int) {
        lock.lock()
        defer { lock.unlock() }
        pending[lane, default: [:]][order] = .some(entry)
        var next = nextOrder[lane, default: 0]
        while let waiting = pending[lane]?.removeValue(forKey: next) {
            next += 1
            guard let (ready, captured) = waiting else { continue }
            var out = ready
            out.seq = next - 1
            out.time = Date()
            let latency = ContinuousClock.now - captured
            out.latencyMs = Double(latency.components.seconds) * 1000 + Double(latency.components.attoseconds) / 1e15
            emit(out)
        }
        nextOrder[lane] = next
    }

    /// Forgets a source's place (its lane is being reused by a restarted source).
    public func reset(lane: Int) {
        lock.lock()
        defer { lock.unlock() }
        nextOrder[lane] = nil
        pending[lane] = nil
    }
}
