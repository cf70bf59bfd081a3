import Capture
import Detector
import Foundation
import FrameRing
import Sink
import Tracking
import Values

/// How one source feeds the pipeline.
public struct SourceOptions: Sendable, Equatable {
    /// The name records carry in `source`.
    public var name: String
    public var input: String
    /// nil: `lossless` for files, `latest` for live sources.
    public var policy: DropPolicy?
    /// Frames the source's lane holds; nil picks by policy.
    public var ringCapacity: Int?
    /// Pace a file at its native frame rate (or `realtimeFPS`) and treat it as live.
    public var realtime: Bool
    public var realtimeFPS: Double?
    /// Detect at most this many frames per second; the rest are skipped at capture (not counted as drops).
    public var fpsLimit: Double?
    /// Bound on each blocking read of a network stream.
    public var ioTimeout: Duration
    /// What to ask a V4L2 camera for; nil lets negotiation choose (640x480, or the largest up to 1280x720, at up to 30 fps).
    public var captureWidth: Int?
    public var captureHeight: Int?
    public var captureFPS: Double?
    /// This source's own `threshold`/`thresholds`; changing them never restarts the source.
    public var thresholds = SourceThresholds()
    /// This source's own `tracking` keys; changing them never restarts the source either.
    public var tracking = TrackingOverrides()

    public init(name: String, input: String, policy: DropPolicy? = nil, ringCapacity: Int? = nil, realtime: Bool = false,
                realtimeFPS: Double? = nil, fpsLimit: Double? = nil, ioTimeout: Duration = .seconds(10)) {
        self.name = name
        self.input = input
        self.policy = policy
        self.ringCapacity = ringCapacity
        self.realtime = realtime
        self.realtimeFPS = realtimeFPS
        self.fpsLimit = fpsLimit
        self.ioTimeout = ioTimeout
    }

    /// Whether going from `self` to `other` needs the source closed and reopened: any change but its thresholds and tracking.
    public func needsRestart(toBecome other: SourceOptions) -> Bool {
        var other = other
        other.thresholds = thresholds
        other.tracking = tracking
        return other != self
    }
}

/// source -> frame ring -> detector workers -> ordered sink. One capture thread per source and one
/// worker thread per detector engine (one per core by default); workers take frames from all sources fairly.
public final class Pipeline: @unchecked Sendable {
    public typealias SourceOpener = @Sendable (SourceOptions) throws -> any FrameSource

    private let ring: FrameRing
    private let sink: OrderedSink
    private let lock = NSLock()
    private var thresholds: Thresholds
    /// Sources with their own thresholds, by name; the rest use `thresholds`.
    private var sourceThresholds: [String: SourceThresholds] = [:]
    /// `thresholds` with each source's overrides applied, computed when either changes rather than per frame.
    private var resolvedThresholds: [String: Thresholds] = [:]
    private var workers: [Thread] = []
    private let workersDone = DispatchGroup()
    private var captures: [Int: CaptureHandle] = [:]
    private var failures: [CaptureError] = []
    /// How each ended source ended, announced once its last record is out.
    private let laneEndings: LaneEndings
    private let onSourceEvent: @Sendable (SourceEvent) -> Void
    private let frameTap: FrameTap?

    /// Sees each detected frame on its worker thread before the frame's pixels go back to the pool:
    /// it may copy them (for a preview), never keep them, and must return quickly.
    public typealias FrameTap = @Sendable (_ frame: Frame, _ detections: [Detection]) -> Void

    /// A source ending, by error, at its end of stream or by `remove(lane:)` (not when the pipeline stops),
    /// sent after its last record.
    public enum SourceEvent: Sendable {
        case ended(name: String, lane: Int, live: Bool)
        case failed(name: String, lane: Int, error: CaptureError)
        case removed(name: String, lane: Int)
    }

    private final class CaptureHandle: @unchecked Sendable {
        let options: SourceOptions
        let source: any FrameSource
        let lane: Int
        let live: Bool
        let done = DispatchGroup()
        /// Signalled to cut a pacing wait short when the source is removed or the pipeline stops.
        let wake = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var stopping = false
        init(options: SourceOptions, source: any FrameSource, lane: Int, live: Bool) {
            self.options = options
            self.source = source
            self.lane = lane
            self.live = live
        }
        var isStopping: Bool { lock.withLock { stopping } }
        func stop() {
            lock.withLock { stopping = true }
            source.close()
            wake.signal()
        }
    }

    /// Builds `threads` detectors over `model` and starts their worker threads.
    public init(model: Model, threads: Int, thresholds: Thresholds,
                onSourceEvent: @escaping @Sendable (SourceEvent) -> Void = { _ in },
                frameTap: FrameTap? = nil,
                emit: @escaping @Sendable (DetectionRecord) -> Void) throws {
        ring = FrameRing()
        let endings = LaneEndings()
        sink = OrderedSink(emit: emit, laneFinished: { lane in
            if let event = endings.take(lane) { onSourceEvent(event) }
        })
        self.laneEndings = endings
        self.thresholds = thresholds
        self.onSourceEvent = onSourceEvent
        self.frameTap = frameTap
        let detectors = try (0..<threads).map { _ in try model.makeDetector() }
        for (index, detector) in detectors.enumerated() {
            let thread = Thread { [ring, sink] in
                self.work(detector: detector, ring: ring, sink: sink)
                self.workersDone.leave()
            }
            thread.name = "sightline-worker-\(index)"
            thread.stackSize = 4 << 20
            workers.append(thread)
        }
        for thread in workers {
            workersDone.enter()
            thread.start()
        }
    }

    /// The top-level thresholds; sources added with their own `thresholds` keep their overrides on top.
    public var currentThresholds: Thresholds {
        get { lock.withLock { thresholds } }
        set { lock.withLock { thresholdsChanged(global: newValue, sources: sourceThresholds) } }
    }

    /// Replaces the top-level thresholds and every source's overrides (by source name) at once.
    public func setThresholds(_ global: Thresholds, sources: [String: SourceThresholds]) {
        lock.withLock { thresholdsChanged(global: global, sources: sources) }
    }

    /// Must hold `lock`.
    private func thresholdsChanged(global: Thresholds, sources: [String: SourceThresholds]) {
        thresholds = global
        sourceThresholds = sources.filter { $0.value != SourceThresholds() }
        resolvedThresholds = sourceThresholds.mapValues { global.overridden(by: $0) }
    }

    /// What records of `source` are filtered with.
    func thresholds(for source: String) -> Thresholds {
        lock.withLock { resolvedThresholds[source] ?? thresholds }
    }

    /// Opens the source, then asks `admit` (with the lane and whether the source is live) before its capture
    /// thread starts: the caller can record the lane, announce the source, or decline (nil is returned).
    /// Throws `CaptureError` if the source cannot be opened.
    @discardableResult
    public func add(_ options: SourceOptions, opener: SourceOpener = Pipeline.openDefault,
                    admit: (_ lane: Int, _ live: Bool) -> Bool = { _, _ in true }) throws -> Int? {
        let source = try opener(options)
        lock.withLock {
            var sources = sourceThresholds
            sources[options.name] = options.thresholds
            thresholdsChanged(global: thresholds, sources: sources)
        }
        let live = source.isLive || options.realtime
        let policy = options.policy ?? (live ? .latest : .lossless)
        let capacity = options.ringCapacity ?? (policy == .latest ? 1 : 2 * max(workers.count, 1) + 2)
        let lane = ring.addSource(capacity: capacity, policy: policy)
        guard admit(lane, live) else {
            ring.discard(lane: lane)
            source.close()
            return nil
        }
        let handle = CaptureHandle(options: options, source: source, lane: lane, live: live)
        lock.withLock { captures[lane] = handle }
        handle.done.enter()
        let thread = Thread { [ring] in
            self.capture(handle, ring: ring)
            handle.done.leave()
        }
        thread.name = "sightline-capture-\(lane)"
        thread.start()
        return lane
    }

    /// Stops a running source: closes it, discards its queued frames and waits for its capture thread.
    /// `.removed` follows once the frames already being detected are emitted.
    /// (A source that ended or failed by itself needs no removal: its queued frames are still detected.)
    public func remove(lane: Int) {
        guard let handle = lock.withLock({ captures.removeValue(forKey: lane) }) else { return }
        // Set before stopping: the capture thread may finish the lane as soon as the source closes.
        laneEndings.set(.removed(name: handle.options.name, lane: lane), lane: lane)
        handle.stop()
        sink.finish(lane: lane, total: ring.discard(lane: lane))
        handle.done.wait()
    }

    public func stats(lane: Int) -> FrameRing.LaneStats { ring.stats(lane: lane) }

    /// The first errors of sources that failed after opening (kept for `detect`'s exit status; bounded).
    public var sourceFailures: [CaptureError] { lock.withLock { failures } }

    /// For a batch run: no more sources will be added. Waits until every source has ended and every
    /// frame is detected and emitted.
    public func finish() {
        ring.seal()
        workersDone.wait()
    }

    /// Drains: stops capture, lets workers finish the frames in flight (queued ones are dropped), waits for them.
    public func stop() {
        let handles = lock.withLock { Array(captures.values) }
        for handle in handles { handle.stop() }
        ring.stop()
        workersDone.wait()
        for handle in handles { handle.done.wait() }
    }

    /// V4L2 devices through libv4l2; directories and image sequences image by image; files and stream URLs through FFmpeg.
    public static let openDefault: SourceOpener = { options in
        if options.input.hasPrefix("/dev/video") || options.input.hasPrefix("/dev/v4l/") {
            return try V4L2Source(device: options.input, sourceID: options.name, width: options.captureWidth,
                                  height: options.captureHeight, fps: options.captureFPS)
        }
        if let files = try ImageListSource.files(for: options.input) {
            return try ImageListSource(input: options.input, files: files, sourceID: options.name)
        }
        return try FFmpegSource(input: options.input, sourceID: options.name, ioTimeout: options.ioTimeout)
    }

    /// The largest gap between consecutive frames' timestamps that `realtime` pacing waits out.
    static let maxTimestampJump = 10.0

    private func capture(_ handle: CaptureHandle, ring: FrameRing) {
        let options = handle.options
        let clock = ContinuousClock()
        var pacing: (start: ContinuousClock.Instant, firstPTS: Double)? = nil
        var lastPosition: Double? = nil
        var lastAccepted: ContinuousClock.Instant? = nil
        let interval = options.fpsLimit.map { Duration.seconds(1 / $0) }
        func due(_ instant: ContinuousClock.Instant) -> Bool {
            guard let interval, let last = lastAccepted else { return true }
            return instant - last >= interval
        }
        do {
            // fps_limit is applied by the source before conversion, except when pacing restamps the frames.
            while let decoded = try handle.source.next(accepting: { options.realtime || due($0) }) {
                var frame = decoded
                if options.realtime {
                    let fps = options.realtimeFPS ?? handle.source.frameRate ?? 25
                    let position = options.realtimeFPS == nil ? (frame.pts ?? Double(frame.sequence) / fps) : Double(frame.sequence) / fps
                    // A timestamp that jumps back, or ahead by more than `Self.maxTimestampJump`, is a discontinuity
                    // (a spliced or damaged file): pacing restarts from it instead of sleeping through the gap.
                    if let last = lastPosition, position < last || position - last > Self.maxTimestampJump { pacing = nil }
                    lastPosition = position
                    if pacing == nil { pacing = (clock.now, position) }
                    let wait = pacing!.start + .seconds(max(0, position - pacing!.firstPTS)) - clock.now
                    if wait > .zero, handle.wake.wait(timeout: .now() + .nanoseconds(Int(min(wait, .seconds(3600)) / .nanoseconds(1)))) == .success {
                        frame.pixels.recycle()
                        break
                    }
                    frame = Frame(sourceID: frame.sourceID, sequence: frame.sequence, pts: frame.pts, captureTime: Date(),
                                  captureInstant: clock.now, pixels: frame.pixels)
                    frame.file = decoded.file
                }
                if options.realtime, !due(frame.captureInstant) {
                    frame.pixels.recycle()
                    continue
                }
                lastAccepted = frame.captureInstant
                guard ring.push(frame, lane: handle.lane) else { break }
            }
            if !handle.isStopping { laneEndings.set(.ended(name: options.name, lane: handle.lane, live: handle.live), lane: handle.lane) }
            finishLane(handle)
        } catch {
            let failure = error as? CaptureError ?? CaptureError(input: options.input, reason: "\(error)")
            lock.withLock {
                if failures.count < 100 { failures.append(failure) }
            }
            if !handle.isStopping { laneEndings.set(.failed(name: options.name, lane: handle.lane, error: failure), lane: handle.lane) }
            finishLane(handle)
        }
    }

    /// The capture side is done: the lane drains, and the sink learns its total if nothing is left to drain.
    private func finishLane(_ handle: CaptureHandle) {
        lock.withLock { _ = captures.removeValue(forKey: handle.lane) }
        if let total = ring.close(lane: handle.lane) { sink.finish(lane: handle.lane, total: total) }
    }

    private func work(detector: Detector, ring: FrameRing, sink: OrderedSink) {
        while let job = ring.next() {
            let frame = job.frame
            let thresholds = thresholds(for: frame.sourceID)
            let started = ContinuousClock.now
            do {
                var detections = try detector.detect(frame.pixels, threshold: thresholds.floor)
                let lowScore = thresholds.lowScoreFloor.map { floor in
                    detections.filter { $0.score >= floor && !thresholds.accepts(label: $0.label, score: $0.score) }
                } ?? []
                detections.removeAll { !thresholds.accepts(label: $0.label, score: $0.score) }
                let infer = ContinuousClock.now - started
                var record = DetectionRecord(
                    source: frame.sourceID, frame: frame.sequence, seq: job.order, pts: frame.pts, time: Date(),
                    captureTime: frame.captureTime, width: frame.width, height: frame.height, latencyMs: 0,
                    inferMs: infer / .milliseconds(1),
                    dropped: job.droppedBefore, detections: detections, file: frame.file)
                record.lowScore = lowScore
                frameTap?(frame, detections)
                frame.pixels.recycle()
                sink.submit(record, lane: job.lane, order: job.order, capturedAt: frame.captureInstant)
            } catch {
                frame.pixels.recycle()
                StandardError.write("sightline: detection failed on \(frame.sourceID) frame \(frame.sequence): \(error)\n")
                sink.skip(lane: job.lane, order: job.order, droppedBefore: job.droppedBefore)
            }
            if job.isLast { sink.finish(lane: job.lane, total: job.order + 1) }
        }
    }
}

/// Source endings waiting for their lane's last record.
private final class LaneEndings: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [Int: Pipeline.SourceEvent] = [:]
    func set(_ event: Pipeline.SourceEvent, lane: Int) { lock.withLock { events[lane] = event } }
    func take(_ lane: Int) -> Pipeline.SourceEvent? { lock.withLock { events.removeValue(forKey: lane) } }
}
