import Foundation
import Values

/// Puts records back in frame order per source although workers finish out of order, stamps the
/// emit time, capture-to-emit latency and `seq`, and hands them on in order, one at a time.
public final class OrderedSink: @unchecked Sendable {
    private enum Entry {
        case record(Record.Detections, capturedAt: ContinuousClock.Instant)
        /// A frame that produced no record; it counts as dropped in the next record.
        case skipped(droppedBefore: Int)
    }

    private struct LaneState {
        var nextOrder = 0
        var emitted = 0
        var carriedDrops = 0
        var pending: [Int: Entry] = [:]
        /// Set once the lane will dispatch no more frames.
        var total: Int?
    }

    private let lock = NSLock()
    private var lanes: [Int: LaneState] = [:]
    private let emit: @Sendable (Record.Detections) -> Void
    private let laneFinished: @Sendable (Int) -> Void

    /// `emit` is called under the sink's lock, in order per source; `laneFinished` too, after a finished
    /// lane's last record.
    public init(emit: @escaping @Sendable (Record.Detections) -> Void, laneFinished: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.emit = emit
        self.laneFinished = laneFinished
    }

    /// Accepts the record of the `order`-th dispatched frame of source `lane`.
    public func submit(_ record: Record.Detections, lane: Int, order: Int, capturedAt: ContinuousClock.Instant) {
        accept(.record(record, capturedAt: capturedAt), lane: lane, order: order)
    }

    /// Gives up the `order`-th slot of `lane` (its frame failed), so later records are not held back;
    /// the next record reports it (and the frames dropped before it) in `dropped`.
    public func skip(lane: Int, order: Int, droppedBefore: Int) {
        accept(.skipped(droppedBefore: droppedBefore), lane: lane, order: order)
    }

    /// The lane dispatched `total` frames in all; its state goes once the last of them is out.
    public func finish(lane: Int, total: Int) {
        lock.lock()
        defer { lock.unlock() }
        lanes[lane, default: LaneState()].total = total
        forgetIfDone(lane)
    }

    private func accept(_ entry: Entry, lane: Int, order: Int) {
        lock.lock()
        defer { lock.unlock() }
        var state = lanes[lane, default: LaneState()]
        state.pending[order] = entry
        while let ready = state.pending.removeValue(forKey: state.nextOrder) {
            state.nextOrder += 1
            switch ready {
            case .skipped(let droppedBefore):
                state.carriedDrops += droppedBefore + 1
            case .record(var out, let captured):
                out.seq = state.emitted
                out.dropped += state.carriedDrops
                out.time = Date()
                out.latencyMs = (ContinuousClock.now - captured) / .milliseconds(1)
                state.emitted += 1
                state.carriedDrops = 0
                emit(out)
            }
        }
        lanes[lane] = state
        forgetIfDone(lane)
    }

    /// Must hold the lock.
    private func forgetIfDone(_ lane: Int) {
        if let state = lanes[lane], let total = state.total, state.nextOrder >= total {
            lanes[lane] = nil
            laneFinished(lane)
        }
    }
}
