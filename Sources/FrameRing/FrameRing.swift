import Foundation
import Values

/// What a full lane does with a new frame.
public enum DropPolicy: String, Sendable, CaseIterable {
    /// The producer waits for room: every frame is detected (files).
    case lossless
    /// The oldest queued frame is dropped: workers always get the freshest frame (cameras, live streams).
    case latest
}

/// A frame handed to a worker, with its place in its source's output order.
public struct DispatchedFrame: Sendable {
    public let frame: Frame
    /// Index of the source lane, as returned by `addSource`.
    public let lane: Int
    /// 0-based order among this source's dispatched frames; the sink emits records in this order.
    public let order: Int
    /// Frames of this source dropped since its previous dispatched frame.
    public let droppedBefore: Int
    /// The lane is closed and this was its last frame: `order + 1` orders in all.
    public let isLast: Bool
}

/// The bounded buffer between capture threads and detector workers: one fixed-capacity lane per source,
/// taken from round-robin so that no source starves another. Nothing queues without bound.
public final class FrameRing: @unchecked Sendable {
    private struct Lane {
        var slots: [Frame?]
        var head = 0
        var count = 0
        let policy: DropPolicy
        var open = true
        var dispatched = 0
        var droppedTotal = 0
        var droppedSinceDispatch = 0
    }

    public struct LaneStats: Sendable, Equatable {
        public let queued: Int
        public let dropped: Int
        public let dispatched: Int
    }

    private let condition = NSCondition()
    private var lanes: [Lane] = []
    /// Lanes still open or holding frames, in round-robin order; finished lanes leave it and free their slots.
    private var active: [Int] = []
    private var cursor = 0
    private var stopped = false
    private var sealed = false

    public init() {}

    /// No more lanes will be added: once every lane is closed and drained, `next()` returns nil.
    /// (A daemon, whose sources come and go, never seals; only `stop()` ends it.)
    public func seal() {
        condition.lock()
        defer { condition.unlock() }
        sealed = true
        condition.broadcast()
    }

    /// Adds a lane for one source; returns its index.
    public func addSource(capacity: Int, policy: DropPolicy) -> Int {
        precondition(capacity >= 1, "a lane holds at least one frame")
        condition.lock()
        defer { condition.unlock() }
        lanes.append(Lane(slots: Array(repeating: nil, count: capacity), policy: policy))
        active.append(lanes.count - 1)
        return lanes.count - 1
    }

    /// Queues a frame. A full `lossless` lane blocks until a worker takes one; a full `latest` lane
    /// drops (and recycles) its oldest frame. Returns false once the ring is stopped or the lane closed.
    @discardableResult
    public func push(_ frame: Frame, lane index: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !stopped && lanes[index].open && lanes[index].count == lanes[index].slots.count && lanes[index].policy == .lossless {
            condition.wait()
        }
        guard !stopped && lanes[index].open else {
            frame.pixels.recycle()
            return false
        }
        if lanes[index].count == lanes[index].slots.count {
            takeOldest(index)?.pixels.recycle()
            lanes[index].droppedTotal += 1
            lanes[index].droppedSinceDispatch += 1
        }
        let tail = (lanes[index].head + lanes[index].count) % lanes[index].slots.count
        lanes[index].slots[tail] = frame
        lanes[index].count += 1
        condition.broadcast()
        return true
    }

    /// Marks a source as finished: workers drain what it queued. Returns the lane's total number of orders
    /// if it is already drained (else the last dispatched frame carries `isLast`).
    @discardableResult
    public func close(lane index: Int) -> Int? {
        condition.lock()
        defer { condition.unlock() }
        lanes[index].open = false
        condition.broadcast()
        guard lanes[index].count == 0 else { return nil }
        retire(index)
        return lanes[index].dispatched
    }

    /// Closes a lane and throws away what it still holds (a source removed while running).
    /// Returns the lane's total number of orders.
    @discardableResult
    public func discard(lane index: Int) -> Int {
        condition.lock()
        defer { condition.unlock() }
        lanes[index].open = false
        while let frame = takeOldest(index) { frame.pixels.recycle() }
        retire(index)
        condition.broadcast()
        return lanes[index].dispatched
    }

    /// The next frame for a worker, fairly across sources. Blocks while every open lane is empty;
    /// nil once the ring is sealed and every lane closed and drained, or the ring is stopped.
    public func next() -> DispatchedFrame? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if stopped { return nil }
            for step in 0..<active.count {
                let position = (cursor + step) % active.count
                let i = active[position]
                guard let frame = takeOldest(i) else { continue }
                let isLast = !lanes[i].open && lanes[i].count == 0
                let dispatched = DispatchedFrame(frame: frame, lane: i, order: lanes[i].dispatched,
                                                 droppedBefore: lanes[i].droppedSinceDispatch, isLast: isLast)
                lanes[i].dispatched += 1
                lanes[i].droppedSinceDispatch = 0
                cursor = position + 1
                if isLast { retire(i) }
                condition.broadcast()
                return dispatched
            }
            if sealed && active.isEmpty { return nil }
            condition.wait()
        }
    }

    /// Wakes every waiter; queued frames are recycled and nothing more is accepted or handed out.
    public func stop() {
        condition.lock()
        defer { condition.unlock() }
        stopped = true
        for i in active {
            while let frame = takeOldest(i) { frame.pixels.recycle() }
        }
        condition.broadcast()
    }

    public func stats(lane index: Int) -> LaneStats {
        condition.lock()
        defer { condition.unlock() }
        return LaneStats(queued: lanes[index].count, dropped: lanes[index].droppedTotal, dispatched: lanes[index].dispatched)
    }

    /// Must hold the lock.
    private func takeOldest(_ i: Int) -> Frame? {
        guard lanes[i].count > 0 else { return nil }
        let frame = lanes[i].slots[lanes[i].head]
        lanes[i].slots[lanes[i].head] = nil
        lanes[i].head = (lanes[i].head + 1) % lanes[i].slots.count
        lanes[i].count -= 1
        return frame
    }

    /// A closed, drained lane leaves the round-robin and frees its slots. Must hold the lock.
    private func retire(_ i: Int) {
        guard let position = active.firstIndex(of: i) else { return }
        active.remove(at: position)
        if position < cursor { cursor -= 1 }
        lanes[i].slots = []
    }
}
