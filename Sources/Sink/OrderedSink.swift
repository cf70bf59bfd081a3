import Foundation
import Synchronization

/// Puts records back in frame order per source although workers finish out of order, stamps the
/// emit time, capture-to-emit latency and `seq`, and hands them on in order, one at a time.
/// A lane's end (`LaneEnding`, whatever the caller uses to say how its source ended) comes through
/// `finish` and goes out through `laneFinished` after the lane's last record (see `FrameRing`).
public final class OrderedSink<LaneEnding: Sendable>: Sendable {
    private enum Entry {
        case record(DetectionRecord, capturedAt: ContinuousClock.Instant)
        /// A frame that produced no record; it counts as dropped in the next record.
        case skipped(droppedBefore: Int)
    }

    private struct LaneState {
        var nextOrder = 0
        var emitted = 0
        var carriedDrops = 0
        var pending: [Int: Entry] = [:]
        /// Set once the lane will dispatch no more frames.
        var end: (total: Int, ending: LaneEnding)?
    }

    private let lanes = Mutex<[Int: LaneState]>([:])
    private let emit: @Sendable (DetectionRecord) -> Void
    private let laneFinished: @Sendable (_ lane: Int, _ ending: LaneEnding) -> Void

    /// `emit` is called under the sink's lock, in order per source; `laneFinished` too, after a finished
    /// lane's last record.
    public init(emit: @escaping @Sendable (DetectionRecord) -> Void,
                laneFinished: @escaping @Sendable (_ lane: Int, _ ending: LaneEnding) -> Void = { _, _ in }) {
        self.emit = emit
        self.laneFinished = laneFinished
    }

    /// Accepts the record of the `order`-th dispatched frame of source `lane`.
    public func submit(_ record: DetectionRecord, lane: Int, order: Int, capturedAt: ContinuousClock.Instant) {
        accept(.record(record, capturedAt: capturedAt), lane: lane, order: order)
    }

    /// Gives up the `order`-th slot of `lane` (its frame failed), so later records are not held back;
    /// the next record reports it (and the frames dropped before it) in `dropped`.
    public func skip(lane: Int, order: Int, droppedBefore: Int) {
        accept(.skipped(droppedBefore: droppedBefore), lane: lane, order: order)
    }

    /// The lane dispatched `total` frames in all; once the last of them is out its state goes and
    /// `laneFinished` gets `ending`.
    public func finish(lane: Int, total: Int, ending: LaneEnding) {
        lanes.withLock { lanes in
            lanes[lane, default: LaneState()].end = (total, ending)
            forgetIfDone(lane, in: &lanes)
        }
    }

    private func accept(_ entry: Entry, lane: Int, order: Int) {
        lanes.withLock { lanes in
            emitReady(after: entry, order: order, from: &lanes[lane, default: LaneState()])
            forgetIfDone(lane, in: &lanes)
        }
    }

    /// Must hold the lock.
    private func emitReady(after entry: Entry, order: Int, from state: inout LaneState) {
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
    }

    /// Must hold the lock.
    private func forgetIfDone(_ lane: Int, in lanes: inout [Int: LaneState]) {
        if let state = lanes[lane], let end = state.end, state.nextOrder >= end.total {
            lanes[lane] = nil
            laneFinished(lane, end.ending)
        }
    }
}
