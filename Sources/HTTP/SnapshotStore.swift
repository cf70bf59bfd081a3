import Annotate
import Foundation
import Synchronization
import Tracking
import Values

/// Event snapshots (docs/HTTP.md, `/events/<id>/snapshot.jpg`): for each tracked object, the frame of its
/// best-scoring detection with its box drawn, kept as a JPEG for the last `capacity` events.
///
/// Nothing is copied or encoded on the detection path, and nothing there waits for the store's thread. The frame tap
/// takes a frame that has detections (its pixels, no copy) until its record leaves the sink, where the tracker has
/// put track ids on it. Then the frame goes back to its source's pool at once, unless it holds an open event's best
/// detection yet: then the store keeps that very buffer as the event's view (no copy either), and gives back the
/// view it replaces. Once the event ends (or someone asks for an open event's snapshot), the store's own
/// `sl-snapshots` thread copies the view into its one scratch buffer, gives the frame back, draws the box and
/// encodes the JPEG: one copy and one encode per event, however often its best view improved. While views are kept
/// the thread looks for ended events every `pollInterval` rather than being woken by the sink, which would wake it
/// under the sink's lock; only a request, or the first event to end after a quiet spell, wakes it.
public final class SnapshotStore: Sendable {
    /// An event as `object_start`/`object_end` name it: a track id is unique per source for the life of the daemon.
    public struct EventKey: Hashable, Sendable, CustomStringConvertible {
        public let source: String
        public let trackID: Int

        public init(source: String, trackID: Int) {
            self.source = source
            self.trackID = trackID
        }

        /// `<source>-<track_id>`, the source percent-encoded as in `/sources/<name>/` paths (e.g. `door-7`).
        public init?(id: String) {
            guard let dash = id.lastIndex(of: "-"), let trackID = Int(id[id.index(after: dash)...]), trackID > 0,
                  id[id.index(after: dash)...].allSatisfy({ $0.isASCII && $0.isNumber }),
                  let source = String(id[..<dash]).removingPercentEncoding, !source.isEmpty else { return nil }
            self.init(source: source, trackID: trackID)
        }

        public var description: String {
            var allowed = CharacterSet(charactersIn: "-_.")
            allowed.formUnion(CharacterSet(charactersIn: "a"..."z"))
            allowed.formUnion(CharacterSet(charactersIn: "A"..."Z"))
            allowed.formUnion(CharacterSet(charactersIn: "0"..."9"))
            return "\(source.addingPercentEncoding(withAllowedCharacters: allowed) ?? source)-\(trackID)"
        }

        public var path: String { "/events/\(self)/snapshot.jpg" }
    }

    public struct Snapshot: Sendable {
        public let jpeg: [UInt8]
        /// The record's `frame`, and the score of the event's detection there.
        public let frame: Int
        public let score: Float
        /// The event has ended: this is its best detection for good.
        public let final: Bool
    }

    public enum Lookup: Sendable {
        /// Never started, or no longer among the last `capacity` events.
        case unknown
        /// Started, but its picture is not encoded yet (or a better one is being encoded): ask again shortly.
        case pending(Snapshot?)
        case picture(Snapshot)
        /// Ended without a picture (no frame of it was kept, or encoding failed): there will be none.
        case noPicture
    }

    private struct FrameKey: Hashable {
        var source: String
        var frame: Int
    }

    /// An event's best detection yet, not encoded yet, on its frame: the source's own buffer, which other events'
    /// views may share.
    private struct View {
        let pixels: PixelBuffer
        let frame: Int
        let detection: Detection
    }

    private struct Entry {
        /// The published picture.
        var snapshot: Snapshot?
        /// A better view than `snapshot`, waiting to be encoded.
        var view: View?
        /// The best score offered so far (a detection must beat it to become the view).
        var best: Float = -1
        var ended = false
        var encodeAsked = false
        /// The thread is encoding a view of it.
        var encoding = false
    }

    private struct State {
        /// Started events, oldest first: the last `capacity` of them are kept.
        var order: [EventKey] = []
        var entries: [EventKey: Entry] = [:]
        /// The frames views are on, with how many views each.
        var viewFrames: [ObjectIdentifier: (pixels: PixelBuffer, views: Int)] = [:]
        /// Events whose view the thread should encode (ended, or asked for), in order.
        var todo: [EventKey] = []
        /// The frame the thread is copying from; if its last view goes meanwhile, the thread gives it back.
        var reading: PixelBuffer?
        var giveBackAfterReading = false
        var stopped = false
        /// The thread waits for a wake-up, with no views to look after.
        var sleeping = false

        /// Whether the thread needs a wake-up to see new work (then it gets one: true).
        mutating func wakeIfSleeping() -> Bool {
            defer { sleeping = false }
            return sleeping
        }

        /// One view less on `pixels`: the frame, if it is to go back to its pool now (outside the lock).
        mutating func release(_ pixels: PixelBuffer) -> PixelBuffer? {
            let id = ObjectIdentifier(pixels)
            guard let frame = viewFrames[id] else { return nil }
            guard frame.views <= 1 else {
                viewFrames[id]?.views -= 1
                return nil
            }
            viewFrames.removeValue(forKey: id)
            if reading === pixels {
                giveBackAfterReading = true
                return nil
            }
            return pixels
        }
    }

    /// How many events' snapshots are kept; 0 turns snapshots off.
    public let capacity: Int
    /// Frames the tap holds at once; beyond, a frame is not held (and cannot become a snapshot).
    static let heldLimit = 8
    /// Frames kept as views at once; beyond, a better view is passed over until one goes.
    static let viewLimit = 16
    /// A frame held longer than this has a record that will not come (its source went away).
    static let staleNanos: Int64 = 5_000_000_000
    /// How often the thread looks for ended events while it keeps views.
    static let pollInterval = DispatchTimeInterval.milliseconds(100)

    private let held = Mutex<[FrameKey: (pixels: PixelBuffer, since: Int64)]>([:])
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private let encodes = Atomic<Int>(0)

    public init(capacity: Int) {
        self.capacity = capacity
        guard capacity > 0 else { return }
        let thread = Thread(named: "sl-snapshots") { [self] in
            run()
            done.signal()
        }
        thread.start()
    }

    /// Stops the snapshot thread and gives back every frame held.
    public func stop() {
        let running = state.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        guard running, capacity > 0 else { return }
        wake.signal()
        done.wait()
        let views = state.withLock { state in
            defer { state.viewFrames.removeAll() }
            return state.viewFrames.values.map(\.pixels)
        }
        let frames = held.withLock { held in
            defer { held.removeAll() }
            return held.values.map(\.pixels)
        }
        for pixels in views + frames { pixels.recycle() }
    }

    /// Views encoded (or tried: encoding can fail) since the start.
    public var snapshotsEncoded: Int { encodes.load(ordering: .relaxed) }

    // MARK: The pipeline's side

    /// The frame tap (a worker thread): true if the store took the frame's pixels, to give them back when its record
    /// is out. Only frames with detections are taken, and never copied here.
    public func hold(_ frame: Frame, detections: [Detection]) -> Bool {
        guard capacity > 0, !detections.isEmpty else { return false }
        let key = FrameKey(source: frame.sourceID, frame: frame.sequence)
        let now = PreviewHub.now()
        var stale: [PixelBuffer] = []
        defer { for pixels in stale { pixels.recycle() } }
        return held.withLock { held in
            if held.count >= Self.heldLimit {
                for (staleKey, entry) in held where now - entry.since > Self.staleNanos {
                    held.removeValue(forKey: staleKey)
                    stale.append(entry.pixels)
                }
            }
            guard held.count < Self.heldLimit, held[key] == nil else { return false }
            held[key] = (frame.pixels, now)
            return true
        }
    }

    /// Each detections record as it leaves the daemon, with its tracker events (under the sink's lock: quick, and
    /// never waits for the snapshot thread).
    public func record(_ record: Record.Detections, events: [TrackEvent]) {
        guard capacity > 0 else { return }
        let pixels = held.withLock { $0.removeValue(forKey: FrameKey(source: record.source, frame: record.frame))?.pixels }
        var giveBack: [PixelBuffer] = []
        let wanted = state.withLock { state -> Bool in
            started(events, in: &state, giveBack: &giveBack)
            if let pixels, state.stopped || !offer(pixels, of: record, in: &state, giveBack: &giveBack) { giveBack.append(pixels) }
            ended(events, in: &state)
            return !state.todo.isEmpty && state.wakeIfSleeping()
        }
        for pixels in giveBack { pixels.recycle() }
        if wanted { wake.signal() }
    }

    /// Tracker events without a frame (a source's tracks ending at its source_down, or at shutdown).
    public func record(events: [TrackEvent]) {
        guard capacity > 0, !events.isEmpty else { return }
        var giveBack: [PixelBuffer] = []
        let wanted = state.withLock { state -> Bool in
            started(events, in: &state, giveBack: &giveBack)
            ended(events, in: &state)
            return !state.todo.isEmpty && state.wakeIfSleeping()
        }
        for pixels in giveBack { pixels.recycle() }
        if wanted { wake.signal() }
    }

    /// Registers the events that start (at once, so that a request right after their `object_start` finds them),
    /// dropping the oldest beyond `capacity`.
    private func started(_ events: [TrackEvent], in state: inout State, giveBack: inout [PixelBuffer]) {
        for case .start(let start) in events {
            let event = EventKey(source: start.source, trackID: start.trackID)
            state.order.append(event)
            state.entries[event] = Entry()
        }
        guard state.order.count > capacity else { return }
        for evicted in state.order.prefix(state.order.count - capacity) {
            if let view = state.entries.removeValue(forKey: evicted)?.view, let pixels = state.release(view.pixels) {
                giveBack.append(pixels)
            }
        }
        state.order.removeFirst(state.order.count - capacity)
    }

    /// Makes the frame the view of each open event whose best detection yet it holds; false if it is no event's.
    private func offer(_ pixels: PixelBuffer, of record: Record.Detections, in state: inout State, giveBack: inout [PixelBuffer]) -> Bool {
        let better = record.detections.compactMap { detection -> (event: EventKey, detection: Detection)? in
            guard let id = detection.trackID else { return nil }
            let event = EventKey(source: record.source, trackID: id)
            guard let entry = state.entries[event], !entry.ended, detection.score > entry.best else { return nil }
            return (event, detection)
        }
        guard !better.isEmpty else { return false }
        // Room for one more frame, counting the frames whose every view this one replaces.
        var replaced: [ObjectIdentifier: Int] = [:]
        for (event, _) in better {
            if let view = state.entries[event]?.view { replaced[ObjectIdentifier(view.pixels), default: 0] += 1 }
        }
        let freed = replaced.filter { state.viewFrames[$0.key]?.views == $0.value }.count
        guard state.viewFrames.count - freed < Self.viewLimit else {
            encodeOldestView(in: &state)
            return false
        }
        for (event, detection) in better {
            if let old = state.entries[event]?.view, let pixels = state.release(old.pixels) { giveBack.append(pixels) }
            state.entries[event]?.view = View(pixels: pixels, frame: record.frame, detection: detection)
            state.entries[event]?.best = detection.score
        }
        state.viewFrames[ObjectIdentifier(pixels)] = (pixels, better.count)
        return true
    }

    /// At the view limit, the oldest open event's view is encoded now, as if asked for, which gives its frame back:
    /// events that stay open for hours (parked cars) must not keep every later event from getting a view. One at a
    /// time: nothing more while the thread has work queued.
    private func encodeOldestView(in state: inout State) {
        guard state.todo.isEmpty, let oldest = state.order.first(where: { event in
            state.entries[event].map { $0.view != nil && !$0.ended && !$0.encodeAsked } ?? false
        }) else { return }
        state.entries[oldest]?.encodeAsked = true
        state.todo.append(oldest)
    }

    /// Marks the events that end, queueing those with a view for the thread.
    private func ended(_ events: [TrackEvent], in state: inout State) {
        for case .end(let end) in events {
            let event = EventKey(source: end.source, trackID: end.trackID)
            guard var entry = state.entries[event] else { continue }
            entry.ended = true
            if entry.view != nil {
                state.todo.append(event)
            } else if let snapshot = entry.snapshot {
                entry.snapshot = Snapshot(jpeg: snapshot.jpeg, frame: snapshot.frame, score: snapshot.score, final: true)
            }
            state.entries[event] = entry
        }
    }

    // MARK: The snapshot thread

    private func run() {
        let encoder = JPEGEncoder()
        var scratch: PixelBuffer?
        while true {
            let sleep = state.withLock { state -> Bool in
                state.sleeping = state.viewFrames.isEmpty && state.todo.isEmpty
                return state.sleeping
            }
            if sleep { wake.wait() } else { _ = wake.wait(timeout: .now() + Self.pollInterval) }
            while let (event, view) = nextView() {
                let copy = fitting(scratch, view.pixels)
                scratch = copy
                read(view, of: event, into: copy)
                Annotator.draw([view.detection], on: copy)
                let jpeg = try? encoder.encode(copy)
                encodes.add(1, ordering: .relaxed)
                publish(jpeg, of: event, view: view)
            }
            if state.withLock({ $0.stopped }) { return }
        }
    }

    /// `scratch` if it has `pixels`' size, else a new buffer that has.
    private func fitting(_ scratch: PixelBuffer?, _ pixels: PixelBuffer) -> PixelBuffer {
        if let scratch, scratch.width == pixels.width, scratch.height == pixels.height { return scratch }
        return PixelBuffer(width: pixels.width, height: pixels.height)
    }

    /// The next view to encode, marked as being read.
    private func nextView() -> (EventKey, View)? {
        state.withLock { state in
            while !state.stopped, !state.todo.isEmpty {
                let event = state.todo.removeFirst()
                guard let entry = state.entries[event], let view = entry.view, entry.ended || entry.encodeAsked else { continue }
                state.reading = view.pixels
                return (event, view)
            }
            return nil
        }
    }

    /// Copies the view `nextView()` marked as being read into `copy`, and then always unmarks it (`copied`).
    private func read(_ view: View, of event: EventKey, into copy: PixelBuffer) {
        defer { copied(view, of: event) }
        copy.bytes.copyMemory(from: view.pixels.bytes, byteCount: view.pixels.rowBytes * view.pixels.height)
    }

    /// The view is copied: its frame goes back (unless other views are on it), and the event waits for its JPEG.
    private func copied(_ view: View, of event: EventKey) {
        let giveBack = state.withLock { state -> [PixelBuffer] in
            var giveBack: [PixelBuffer] = []
            if state.giveBackAfterReading, let reading = state.reading { giveBack.append(reading) }
            (state.reading, state.giveBackAfterReading) = (nil, false)
            guard var entry = state.entries[event] else { return giveBack }
            if let current = entry.view, current.pixels === view.pixels, current.frame == view.frame {
                entry.view = nil
                if let pixels = state.release(view.pixels) { giveBack.append(pixels) }
            }
            entry.encoding = true
            state.entries[event] = entry
            return giveBack
        }
        for pixels in giveBack { pixels.recycle() }
    }

    /// Publishes the view's JPEG (nil: encoding failed); final if the event has ended and no better view came since.
    private func publish(_ jpeg: [UInt8]?, of event: EventKey, view: View) {
        state.withLock { state in
            guard var entry = state.entries[event] else { return }
            if let jpeg {
                entry.snapshot = Snapshot(jpeg: jpeg, frame: view.frame, score: view.detection.score, final: entry.ended && entry.view == nil)
            }
            entry.encoding = false
            entry.encodeAsked = false
            state.entries[event] = entry
        }
    }

    // MARK: The server's side

    /// The event's snapshot; asks for an open event's view to be encoded if it is not yet.
    public func lookup(_ event: EventKey) -> Lookup {
        let (lookup, ask) = state.withLock { state -> (Lookup, Bool) in
            guard var entry = state.entries[event] else { return (.unknown, false) }
            let waiting = entry.view != nil || entry.encoding
            if let snapshot = entry.snapshot, !waiting { return (.picture(snapshot), false) }
            if entry.ended, !waiting { return (.noPicture, false) }
            let ask = entry.view != nil && !entry.encodeAsked && !entry.ended
            if ask {
                entry.encodeAsked = true
                state.entries[event] = entry
                state.todo.append(event)
                state.sleeping = false
            }
            return (.pending(entry.snapshot), ask)
        }
        if ask { wake.signal() }
        return lookup
    }

    /// Whether the event's snapshot is kept (it may not be encoded yet).
    public func keeps(_ event: EventKey) -> Bool { state.withLock { $0.entries[event] != nil } }
}
