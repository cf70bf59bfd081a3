import Annotate
import Capture
import Detector
import Foundation
import Sink
import Values
import Synchronization

/// The preview's side of the pipeline. The frame tap copies a frame only while someone watches its source, at
/// most `previewFPS` times a second; when the frame's record leaves the sink, the copy is handed to the hub's own
/// encoder thread, which draws the record's boxes and encodes the JPEG. Nothing on the detection path waits for
/// it: the tap's cost without viewers is one atomic load, and a frame still being encoded is replaced, not queued.
public final class PreviewHub: Sendable {
    /// One source's latest annotated frame.
    public struct Picture: Sendable {
        public let jpeg: [UInt8]
        public let frame: Int
        public let width: Int
        public let height: Int
        /// Counts pictures of this source, so a stream sends each one once.
        public let generation: Int
        /// Monotonic nanoseconds when it was encoded.
        public let encodedAt: Int64
    }

    /// What the page shows of a source beside its status, from its last record.
    public struct Activity: Sendable {
        public var lastRecordAt: Int64?
        public var latencyMs: Double = 0
        public var inferMs: Double = 0
        public var objects = 0
    }

    private struct SourceState {
        var watchedUntil: Int64 = 0
        var lastCopy: Int64?
        var picture: Picture?
        var generation = 0
        var activity = Activity()
    }

    let options: HTTPOptions
    private let copies = FrameCopies(capacity: 16)
    private let sources = Mutex<[String: SourceState]>([:])
    /// Until when any source is watched: the tap's fast path without viewers.
    private let anyWatchedUntil = Atomic<Int64>(0)
    private let pending = Mutex<(jobs: [String: (pixels: PixelBuffer, record: Record.Detections)], stopped: Bool)>(([:], false))
    private let wake = DispatchSemaphore(value: 0)
    private let encoderDone = DispatchSemaphore(value: 0)
    private let encoded = Atomic<Int>(0)

    /// A viewer keeps its source watched for this long after its last request.
    static let watchNanos: Int64 = 10_000_000_000

    public init(options: HTTPOptions) {
        self.options = options
        let thread = Thread(named: "sl-preview") { [self] in
            encodeLoop()
            encoderDone.signal()
        }
        thread.start()
    }

    /// Stops the encoder thread.
    public func stop() {
        let running = pending.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        guard running else { return }
        wake.signal()
        encoderDone.wait()
    }

    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    // MARK: The pipeline's side

    /// The pipeline's frame tap (a worker thread, before the frame is recycled).
    public func tap(_ frame: Frame) {
        let now = Self.now()
        guard now < anyWatchedUntil.load(ordering: .relaxed) else { return }
        let interval = Int64(1e9 / options.previewFPS)
        let due = sources.withLock { sources -> Bool in
            guard var state = sources[frame.sourceID], now < state.watchedUntil else { return false }
            if let last = state.lastCopy, now - last < interval { return false }
            state.lastCopy = now
            sources[frame.sourceID] = state
            return true
        }
        if due { copies.keep(frame) }
    }

    /// Each detections record as it leaves the sink (under the sink's lock: only bookkeeping here).
    public func record(_ record: Record.Detections) {
        let now = Self.now()
        sources.withLock { sources in
            var state = sources[record.source] ?? SourceState()
            state.activity = Activity(lastRecordAt: now, latencyMs: record.latencyMs, inferMs: record.inferMs, objects: record.detections.count)
            sources[record.source] = state
        }
        guard let pixels = copies.take(source: record.source, frame: record.frame) else { return }
        let replaced = pending.withLock { state -> PixelBuffer? in
            guard !state.stopped else { return pixels }
            return state.jobs.updateValue((pixels, record), forKey: record.source)?.pixels
        }
        replaced?.recycle()
        wake.signal()
    }

    private func encodeLoop() {
        let encoder = JPEGEncoder()
        while true {
            wake.wait()
            let (jobs, stopped) = pending.withLock { state in
                defer { state.jobs.removeAll() }
                return (state.jobs, state.stopped)
            }
            for (source, job) in jobs {
                defer { job.pixels.recycle() }
                guard !stopped else { continue }
                Annotator.draw(job.record.detections, on: job.pixels)
                guard let jpeg = try? encoder.encode(job.pixels) else { continue }
                encoded.add(1, ordering: .relaxed)
                let now = Self.now()
                sources.withLock { sources in
                    var state = sources[source] ?? SourceState()
                    state.generation += 1
                    state.picture = Picture(jpeg: jpeg, frame: job.record.frame, width: job.pixels.width, height: job.pixels.height,
                                            generation: state.generation, encodedAt: now)
                    sources[source] = state
                }
            }
            if stopped { return }
        }
    }

    // MARK: The server's side

    /// A viewer wants `source`'s pictures for the next few seconds.
    public func watch(_ source: String) {
        let until = Self.now() + Self.watchNanos
        sources.withLock { sources in
            var state = sources[source] ?? SourceState()
            state.watchedUntil = until
            sources[source] = state
        }
        anyWatchedUntil.max(until, ordering: .relaxed)
    }

    public func picture(_ source: String) -> Picture? { sources.withLock { $0[source]?.picture } }

    public func activity(_ source: String) -> Activity? { sources.withLock { $0[source]?.activity } }

    /// Pictures encoded since the start.
    public var picturesEncoded: Int { encoded.load(ordering: .relaxed) }
}
