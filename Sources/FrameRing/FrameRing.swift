import Dispatch
import Synchronization
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
    /// The source's lane, as returned by `addSource`.
    public let lane: Int
    /// 0-based order among this source's dispatched frames; the sink emits records in this order.
    public let order: Int
    /// Frames of this source dropped since its previous dispatched frame.
    public let droppedBefore: Int
}

public struct LaneStats: Sendable, Equatable {
    public let queued: Int
    public let dropped: Int
    public let dispatched: Int
}

/// The bounded buffer between capture threads and detector workers: one fixed-capacity lane per source,
/// taken from round-robin so that no source starves another. Nothing queues without bound.
///
/// How a lane ends (the only way it does): whoever ends the source calls `close(lane:ending:discardingQueued:)`
/// once (a later close of the same lane does nothing; a removed source discards its queued frames). After the
/// lane's last frame, `next()` hands one worker `.end(lane:total:ending:)` with the lane's number of orders and
/// frees its slot for a new source (slots are reused, lane numbers never). That worker is the only caller of
/// `OrderedSink.finish`, whose `laneFinished` passes the ending on after the lane's last record: that is where
/// a source's `source_down` comes from. `stop()` ends every lane at once, without end items.
public final class FrameRing<Ending: Sendable>: Sendable {
    /// What a worker gets from `next()`.
    public enum Item: Sendable {
        case frame(DispatchedFrame)
        /// Every frame of `lane` was handed out before this: `total` orders in all.
        case end(lane: Int, total: Int, ending: Ending)
    }

    private struct Lane {
        enum Status {
            case open
            case closed(Ending)
            /// The slot waits for a new source.
            case free
        }

        var lane: Int
        var slots: [Frame?]
        var head = 0
        var count = 0
        var policy: DropPolicy
        var status = Status.open
        var dispatched = 0
        var droppedTotal = 0
        var droppedSinceDispatch = 0
        /// Producers blocked on this full `lossless` lane wait on `room`.
        var waitingProducers = 0
        var room = DispatchSemaphore(value: 0)

        init(lane: Int, capacity: Int, policy: DropPolicy) {
            self.lane = lane
            slots = Array(repeating: nil, count: capacity)
            self.policy = policy
        }

        var isOpen: Bool { if case .open = status { true } else { false } }
        var stats: LaneStats { LaneStats(queued: count, dropped: droppedTotal, dispatched: dispatched) }

        mutating func append(_ frame: Frame) {
            slots[(head + count) % slots.count] = frame
            count += 1
        }

        mutating func takeOldest() -> Frame? {
            guard count > 0 else { return nil }
            let frame = slots[head]
            slots[head] = nil
            head = (head + 1) % slots.count
            count -= 1
            return frame
        }

        mutating func recycleQueued() {
            while let frame = takeOldest() { frame.pixels.recycle() }
        }

        /// The producers to wake: none wait any longer.
        mutating func releaseProducers() -> Wakeup {
            defer { waitingProducers = 0 }
            return Wakeup(room: room, producers: waitingProducers)
        }
    }

    /// Signals to send once the lock is released.
    private struct Wakeup {
        var workers = 0
        var room: DispatchSemaphore?
        var producers = 0

        func send(workersOn work: DispatchSemaphore) {
            for _ in 0..<workers { work.signal() }
            for _ in 0..<producers { room?.signal() }
        }
    }

    private struct State {
        /// Indexed by slot; a slot is reused once its lane has ended.
        var lanes: [Lane] = []
        var slotOfLane: [Int: Int] = [:]
        var nextLane = 0
        /// Slots of lanes still open or holding frames or their end, in round-robin order.
        var active: [Int] = []
        var cursor = 0
        var stopped = false
        var sealed = false
        /// Workers waiting on `work`; each wake-up sent is taken off here first, so none is lost or left over.
        var idleWorkers = 0

        mutating func wakeWorkers(all: Bool) -> Int {
            let woken = all ? idleWorkers : min(idleWorkers, 1)
            idleWorkers -= woken
            return woken
        }

        /// The next item round-robin across lanes, and the slot it came from.
        mutating func take() -> (item: Item, slot: Int)? {
            for step in 0..<active.count {
                let position = (cursor + step) % active.count
                let slot = active[position]
                if let frame = lanes[slot].takeOldest() {
                    let dispatched = DispatchedFrame(frame: frame, lane: lanes[slot].lane, order: lanes[slot].dispatched,
                                                     droppedBefore: lanes[slot].droppedSinceDispatch)
                    lanes[slot].dispatched += 1
                    lanes[slot].droppedSinceDispatch = 0
                    cursor = position + 1
                    return (.frame(dispatched), slot)
                }
                if case .closed(let ending) = lanes[slot].status {
                    let end = Item.end(lane: lanes[slot].lane, total: lanes[slot].dispatched, ending: ending)
                    active.remove(at: position)
                    cursor = position
                    slotOfLane[lanes[slot].lane] = nil
                    lanes[slot].status = .free
                    lanes[slot].slots = []
                    return (end, slot)
                }
            }
            return nil
        }
    }

    private let state = Mutex(State())
    /// Idle workers wait here.
    private let work = DispatchSemaphore(value: 0)

    public init() {}

    /// No more lanes will be added: once every lane has ended, `next()` returns nil.
    /// (A daemon, whose sources come and go, never seals; only `stop()` ends it.)
    public func seal() {
        let wakeup = state.withLock { state in
            state.sealed = true
            return Wakeup(workers: state.active.isEmpty ? state.wakeWorkers(all: true) : 0)
        }
        wakeup.send(workersOn: work)
    }

    /// Adds a lane for one source; returns its number, which no other lane of this ring ever gets.
    public func addSource(capacity: Int, policy: DropPolicy) -> Int {
        precondition(capacity >= 1, "a lane holds at least one frame")
        return state.withLock { state in
            let lane = state.nextLane
            state.nextLane += 1
            let fresh = Lane(lane: lane, capacity: capacity, policy: policy)
            let slot: Int
            if let free = state.lanes.firstIndex(where: { if case .free = $0.status { true } else { false } }) {
                slot = free
                state.lanes[slot] = fresh
            } else {
                slot = state.lanes.count
                state.lanes.append(fresh)
            }
            state.slotOfLane[lane] = slot
            state.active.append(slot)
            return lane
        }
    }

    private enum PushOutcome {
        case queued(dropped: Frame?, wakeup: Wakeup)
        case full(DispatchSemaphore)
        case refused
    }

    /// Queues a frame. A full `lossless` lane blocks until a worker takes one; a full `latest` lane
    /// drops (and recycles) its oldest frame. Returns false once the ring is stopped or the lane closed.
    @discardableResult
    public func push(_ frame: Frame, lane: Int) -> Bool {
        while true {
            let outcome = state.withLock { state -> PushOutcome in
                guard !state.stopped, let slot = state.slotOfLane[lane], state.lanes[slot].isOpen else { return .refused }
                var dropped: Frame?
                if state.lanes[slot].count == state.lanes[slot].slots.count {
                    if state.lanes[slot].policy == .lossless {
                        state.lanes[slot].waitingProducers += 1
                        return .full(state.lanes[slot].room)
                    }
                    dropped = state.lanes[slot].takeOldest()
                    state.lanes[slot].droppedTotal += 1
                    state.lanes[slot].droppedSinceDispatch += 1
                }
                state.lanes[slot].append(frame)
                return .queued(dropped: dropped, wakeup: Wakeup(workers: state.wakeWorkers(all: false)))
            }
            switch outcome {
            case .queued(let dropped, let wakeup):
                dropped?.pixels.recycle()
                wakeup.send(workersOn: work)
                return true
            case .full(let room):
                room.wait()
            case .refused:
                frame.pixels.recycle()
                return false
            }
        }
    }

    /// Ends a lane, as the protocol above describes: workers drain what it queued, or with `discardingQueued`
    /// (a source removed while running) its queued frames are recycled now. Does nothing to a lane already closed.
    public func close(lane: Int, ending: Ending, discardingQueued: Bool = false) {
        let wakeup = state.withLock { state -> Wakeup in
            guard let slot = state.slotOfLane[lane], state.lanes[slot].isOpen else { return Wakeup() }
            state.lanes[slot].status = .closed(ending)
            if discardingQueued { state.lanes[slot].recycleQueued() }
            var wakeup = state.lanes[slot].releaseProducers()
            wakeup.workers = state.wakeWorkers(all: false)
            return wakeup
        }
        wakeup.send(workersOn: work)
    }

    private enum NextOutcome {
        case item(Item, wakeup: Wakeup)
        case idle
        case done
    }

    /// The next frame or lane end for a worker, fairly across sources. Blocks while there is neither;
    /// nil once the ring is sealed and every lane has ended, or the ring is stopped.
    public func next() -> Item? {
        while true {
            let outcome = state.withLock { state -> NextOutcome in
                if state.stopped { return .done }
                if let (item, slot) = state.take() {
                    var wakeup = Wakeup()
                    if case .frame = item, state.lanes[slot].waitingProducers > 0 {
                        state.lanes[slot].waitingProducers -= 1
                        wakeup = Wakeup(room: state.lanes[slot].room, producers: 1)
                    }
                    // The last lane of a sealed ring ended: the other idle workers are done too.
                    if state.sealed && state.active.isEmpty { wakeup.workers = state.wakeWorkers(all: true) }
                    return .item(item, wakeup: wakeup)
                }
                if state.sealed && state.active.isEmpty { return .done }
                state.idleWorkers += 1
                return .idle
            }
            switch outcome {
            case .item(let item, let wakeup):
                wakeup.send(workersOn: work)
                return item
            case .idle:
                work.wait()
            case .done:
                return nil
            }
        }
    }

    /// Wakes every waiter; queued frames are recycled and nothing more is accepted or handed out.
    public func stop() {
        let wakeups = state.withLock { state -> [Wakeup] in
            state.stopped = true
            var wakeups = [Wakeup(workers: state.wakeWorkers(all: true))]
            for slot in state.active {
                state.lanes[slot].recycleQueued()
                wakeups.append(state.lanes[slot].releaseProducers())
            }
            return wakeups
        }
        for wakeup in wakeups { wakeup.send(workersOn: work) }
    }

    /// The lane's counters; nil once it has ended.
    public func stats(lane: Int) -> LaneStats? {
        state.withLock { state in state.slotOfLane[lane].map { state.lanes[$0].stats } }
    }

    /// Slots allocated so far (each the size of one lane): bounded by the most lanes alive at once.
    var slotCount: Int { state.withLock { $0.lanes.count } }
}
