import Annotate
import Foundation
import Synchronization
import Tracking
import Values

/// Event snapshots (docs/HTTP.md, `/events/<id>/snapshot.jpg`): for each tracked object, the frame of its
/// best-scoring detection with its box drawn, kept as a JPEG for the last `capacity` events.
///
/// Nothing is copied or encoded on the detection path. The frame tap takes a frame that has detections (its pixels,
/// no copy) until its record leaves the sink, where the tracker has put track ids on it; the frame then goes back
/// to its source's pool at once, unless it holds an event's best detection yet. Such a frame goes to the store's own
/// `sightline-snapshots` thread, which copies it into a buffer of its own (the event's view), draws the box there
/// and gives the frame back. A view is encoded once its event has ended, or when its snapshot is asked for.
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

    /// A frame of which some detections are the best yet of their events.
    private struct Views: Sendable {
        /// The source's frame: the snapshot thread alone touches it, and gives it back.
        let pixels: PixelBuffer
        let frame: Int
        let detections: [(event: EventKey, detection: Detection)]
    }

    private enum Job: Sendable {
        case views(Views)
        case end(EventKey)
        /// A request wants the latest view of an open event encoded.
        case encode(EventKey)
    }

    /// What requests see, written by the snapshot thread.
    private struct Entry {
        var snapshot: Snapshot?
        /// The thread holds a view newer than `snapshot`.
        var newerView = false
        var encodeAsked = false
        var ended = false
    }

    private struct Published {
        /// Started events, oldest first: the last `capacity` of them are kept.
        var order: [EventKey] = []
        var entries: [EventKey: Entry] = [:]
    }

    /// How many events' snapshots are kept; 0 turns snapshots off.
    public let capacity: Int
    /// Frames the tap holds at once; beyond, a frame is not held (and cannot become a snapshot).
    static let heldLimit = 8
    /// Frames waiting for the snapshot thread at once; beyond, a better view is passed over.
    static let queuedLimit = 16
    /// Open events whose view is kept unencoded; beyond, a view is encoded at once instead.
    static let viewLimit = 16
    /// A frame held longer than this has a record that will not come (its source went away).
    static let staleNanos: Int64 = 5_000_000_000

    private let held = Mutex<[FrameKey: (pixels: PixelBuffer, since: Int64)]>([:])
    /// The sink's side: each open event's best score handed to the thread.
    private let best = Mutex<[EventKey: Float]>([:])
    private let jobs = Mutex<(queue: [Job], queuedFrames: Int, stopped: Bool)>(([], 0, false))
    private let published = Mutex(Published())
    private let wake = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)

    public init(capacity: Int) {
        self.capacity = capacity
        guard capacity > 0 else { return }
        let thread = Thread { [self] in
            run()
            done.signal()
        }
        thread.name = "sightline-snapshots"
        thread.start()
    }

    /// Stops the snapshot thread and gives back every frame held.
    public func stop() {
        let running = jobs.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        guard running, capacity > 0 else { return }
        wake.signal()
        done.wait()
        held.withLock { held in
            for (_, entry) in held { entry.pixels.recycle() }
            held.removeAll()
        }
    }

    // MARK: The pipeline's side

    /// The frame tap (a worker thread): true if the store took the frame's pixels, to give them back when its record
    /// is out. Only frames with detections are taken, and never copied here.
    public func hold(_ frame: Frame, detections: [Detection]) -> Bool {
        guard capacity > 0, !detections.isEmpty else { return false }
        let key = FrameKey(source: frame.sourceID, frame: frame.sequence)
        let now = PreviewHub.now()
        return held.withLock { held in
            if held.count >= Self.heldLimit {
                for (stale, entry) in held where now - entry.since > Self.staleNanos {
                    held.removeValue(forKey: stale)?.pixels.recycle()
                }
            }
            guard held.count < Self.heldLimit, held[key] == nil else { return false }
            held[key] = (frame.pixels, now)
            return true
        }
    }

    /// Each detections record as it leaves the daemon, with its tracker events (under the sink's lock: quick).
    public func record(_ record: Record.Detections, events: [TrackEvent]) {
        guard capacity > 0 else { return }
        let pixels = held.withLock { $0.removeValue(forKey: FrameKey(source: record.source, frame: record.frame))?.pixels }
        var queue = trackJobs(for: events)
        let room = jobs.withLock { $0.queuedFrames < Self.queuedLimit }
        if let pixels, room {
            let better = best.withLock { best in
                record.detections.compactMap { detection -> (event: EventKey, detection: Detection)? in
                    guard let id = detection.trackID else { return nil }
                    let event = EventKey(source: record.source, trackID: id)
                    guard let score = best[event], detection.score > score else { return nil }
                    best[event] = detection.score
                    return (event, detection)
                }
            }
            if better.isEmpty {
                pixels.recycle()
            } else {
                queue.append(.views(Views(pixels: pixels, frame: record.frame, detections: better)))
            }
        } else {
            pixels?.recycle()
        }
        enqueue(queue)
    }

    /// Tracker events without a frame (a source's tracks ending at its source_down, or at shutdown).
    public func record(events: [TrackEvent]) {
        guard capacity > 0 else { return }
        enqueue(trackJobs(for: events))
    }

    /// Registers the events that start (at once, so that a request right after their `object_start` finds them,
    /// dropping the oldest beyond `capacity`), and says which end.
    private func trackJobs(for events: [TrackEvent]) -> [Job] {
        guard !events.isEmpty else { return [] }
        let starts = events.compactMap { event -> EventKey? in
            guard case .start(let start) = event else { return nil }
            return EventKey(source: start.source, trackID: start.trackID)
        }
        if !starts.isEmpty {
            published.withLock { published in
                for event in starts {
                    published.order.append(event)
                    published.entries[event] = Entry()
                }
                if published.order.count > capacity {
                    for evicted in published.order.prefix(published.order.count - capacity) { published.entries.removeValue(forKey: evicted) }
                    published.order.removeFirst(published.order.count - capacity)
                }
            }
        }
        return best.withLock { best in
            events.compactMap { event -> Job? in
                switch event {
                case .start(let start):
                    best[EventKey(source: start.source, trackID: start.trackID)] = -1
                    return nil
                case .end(let end):
                    let key = EventKey(source: end.source, trackID: end.trackID)
                    best.removeValue(forKey: key)
                    return .end(key)
                case .presence:
                    return nil
                }
            }
        }
    }

    private func enqueue(_ queue: [Job]) {
        guard !queue.isEmpty else { return }
        let refused = jobs.withLock { state -> [Job] in
            guard !state.stopped else { return queue }
            state.queue += queue
            state.queuedFrames += queue.filter { if case .views = $0 { true } else { false } }.count
            return []
        }
        for case .views(let views) in refused { views.pixels.recycle() }
        wake.signal()
    }

    // MARK: The snapshot thread

    /// An event's best view so far, drawn, not encoded yet.
    private struct View {
        let pixels: PixelBuffer
        let frame: Int
        let score: Float
        /// Its JPEG is published already.
        var encoded = false
    }

    private func run() {
        let encoder = JPEGEncoder()
        let pool = PixelBufferPool(keep: 4)
        var views: [EventKey: View] = [:]

        func encode(_ view: View, of event: EventKey, final: Bool) {
            let jpeg = try? encoder.encode(view.pixels)
            published.withLock { published in
                guard var entry = published.entries[event] else { return }
                if let jpeg { entry.snapshot = Snapshot(jpeg: jpeg, frame: view.frame, score: view.score, final: final) }
                entry.newerView = false
                entry.encodeAsked = false
                published.entries[event] = entry
            }
        }

        while true {
            wake.wait()
            let (batch, stopped) = jobs.withLock { state in
                defer {
                    state.queue.removeAll()
                    state.queuedFrames = 0
                }
                return (state.queue, state.stopped)
            }
            for job in batch {
                switch job {
                case .views(let frame):
                    defer { frame.pixels.recycle() }
                    guard !stopped else { continue }
                    for (event, detection) in frame.detections {
                        // An event no longer kept (more have started since) keeps no view.
                        guard published.withLock({ $0.entries[event] != nil }) else {
                            views.removeValue(forKey: event)?.pixels.recycle()
                            continue
                        }
                        let previous = views.removeValue(forKey: event)?.pixels
                        let copy = previous.flatMap { $0.width == frame.pixels.width && $0.height == frame.pixels.height ? $0 : nil }
                            ?? pool.take(width: frame.pixels.width, height: frame.pixels.height)
                        if let previous, previous !== copy { previous.recycle() }
                        copy.bytes.copyMemory(from: frame.pixels.bytes, byteCount: frame.pixels.rowBytes * frame.pixels.height)
                        Annotator.draw([detection], on: copy)
                        let view = View(pixels: copy, frame: frame.frame, score: detection.score)
                        if views.count >= Self.viewLimit {
                            encode(view, of: event, final: false)
                            copy.recycle()
                        } else {
                            views[event] = view
                            published.withLock { $0.entries[event]?.newerView = true }
                        }
                    }
                case .end(let event):
                    let view = views.removeValue(forKey: event)
                    defer { view?.pixels.recycle() }
                    if let view, !view.encoded, !stopped {
                        encode(view, of: event, final: true)
                    } else {
                        published.withLock { published in
                            guard let snapshot = published.entries[event]?.snapshot else { return }
                            published.entries[event]?.snapshot = Snapshot(jpeg: snapshot.jpeg, frame: snapshot.frame,
                                                                          score: snapshot.score, final: true)
                        }
                    }
                    published.withLock { $0.entries[event]?.ended = true }
                case .encode(let event):
                    guard !stopped, let view = views[event], !view.encoded else { continue }
                    encode(view, of: event, final: false)
                    views[event]?.encoded = true
                }
            }
            if stopped {
                for (_, view) in views { view.pixels.recycle() }
                return
            }
        }
    }

    // MARK: The server's side

    /// The event's snapshot; asks for an open event's latest view to be encoded if it is not yet.
    public func lookup(_ event: EventKey) -> Lookup {
        let (lookup, ask) = published.withLock { published -> (Lookup, Bool) in
            guard var entry = published.entries[event] else { return (.unknown, false) }
            if let snapshot = entry.snapshot, !entry.newerView { return (.picture(snapshot), false) }
            if entry.ended, entry.snapshot == nil { return (.noPicture, false) }
            let ask = entry.newerView && !entry.encodeAsked
            entry.encodeAsked = entry.encodeAsked || ask
            published.entries[event] = entry
            return (.pending(entry.snapshot), ask)
        }
        if ask { enqueue([.encode(event)]) }
        return lookup
    }

    /// Whether the event's snapshot is kept (it may not be encoded yet).
    public func keeps(_ event: EventKey) -> Bool { published.withLock { $0.entries[event] != nil } }
}
