import Capture
import Detector
import Foundation
import FrameRing
import Sink
import Synchronization
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
public final class Pipeline: Sendable {
    public typealias SourceOpener = @Sendable (SourceOptions) throws -> any FrameSource

    /// A lane ends with the event its source's end announces, or nil (a lane `add` declined) for none.
    private let ring: FrameRing<SourceEvent?>
    private let sink: OrderedSink<SourceEvent?>
    private let state: Mutex<State>
    private let workerCount: Int
    private let workersDone = DispatchGroup()
    private let frameTap: FrameTap?

    /// Sees each detected frame on its worker thread before the frame's pixels go back to the pool, and must
    /// return quickly. It may copy them (for a preview); returning true, it took them instead, and recycles them
    /// itself (they come from the source's small pool: while held, it allocates others, so hold few).
    public typealias FrameTap = @Sendable (_ frame: Frame, _ detections: [Detection]) -> Bool

    private struct State {
        var thresholds: Thresholds
        /// Sources with their own thresholds, by name; the rest use `thresholds`.
        var sourceThresholds: [String: SourceThresholds] = [:]
        /// `thresholds` with each source's overrides applied, computed when either changes rather than per frame.
        var resolvedThresholds: [String: Thresholds] = [:]
        /// Running sources by lane. Whoever takes a handle out of here (its capture thread at the source's end,
        /// `remove`, `stop`) is the one that ends its lane.
        var captures: [Int: CaptureHandle] = [:]
        var failures: [CaptureError] = []

        mutating func thresholdsChanged(global: Thresholds, sources: [String: SourceThresholds]) {
            thresholds = global
            sourceThresholds = sources.filter { $0.value != SourceThresholds() }
            resolvedThresholds = sourceThresholds.mapValues { global.overridden(by: $0) }
        }
    }

    /// A source ending, by error, at its end of stream or by `remove(lane:)` (not when the pipeline stops),
    /// sent after its last record.
    public enum SourceEvent: Sendable {
        case ended(name: String, lane: Int, live: Bool)
        case failed(name: String, lane: Int, error: CaptureError)
        case removed(name: String, lane: Int)
    }

    private final class CaptureHandle: Sendable {
        let options: SourceOptions
        let source: any FrameSource
        let lane: Int
        let live: Bool
        let done = DispatchGroup()
        /// Signalled to cut a pacing wait short when the source is removed or the pipeline stops.
        let wake = DispatchSemaphore(value: 0)
        init(options: SourceOptions, source: any FrameSource, lane: Int, live: Bool) {
            self.options = options
            self.source = source
            self.lane = lane
            self.live = live
        }
        func stop() {
            source.close()
            wake.signal()
        }
    }

    /// Builds `threads` detectors over `model` and starts their worker threads. `sourceThresholds` are the sources'
    /// own overrides by name; only `init` and `setThresholds` set them, never `add`, so a reload that lands while a
    /// source is opening is not undone by the options it was opened with.
    public init(model: Model, threads: Int, thresholds: Thresholds, sourceThresholds: [String: SourceThresholds] = [:],
                onSourceEvent: @escaping @Sendable (SourceEvent) -> Void = { _ in },
                frameTap: FrameTap? = nil,
                emit: @escaping @Sendable (Record.Detections) -> Void) throws {
        ring = FrameRing()
        sink = OrderedSink(emit: emit, laneFinished: { _, event in
            if let event { onSourceEvent(event) }
        })
        var initial = State(thresholds: thresholds)
        initial.thresholdsChanged(global: thresholds, sources: sourceThresholds)
        state = Mutex(initial)
        self.frameTap = frameTap
        let detectors = try (0..<threads).map { _ in try model.makeDetector() }
        workerCount = detectors.count
        for (index, detector) in detectors.enumerated() {
            let thread = Thread(named: "sl-worker-\(index)") { [ring, sink] in
                self.work(detector: detector, ring: ring, sink: sink)
                self.workersDone.leave()
            }
            thread.stackSize = 4 << 20
            workersDone.enter()
            thread.start()
        }
    }

    /// The top-level thresholds; the sources' own overrides stay on top.
    public var currentThresholds: Thresholds {
        get { state.withLock { $0.thresholds } }
        set { state.withLock { $0.thresholdsChanged(global: newValue, sources: $0.sourceThresholds) } }
    }

    /// Replaces the top-level thresholds and every source's overrides (by source name) at once.
    public func setThresholds(_ global: Thresholds, sources: [String: SourceThresholds]) {
        state.withLock { $0.thresholdsChanged(global: global, sources: sources) }
    }

    /// What records of `source` are filtered with.
    func thresholds(for source: String) -> Thresholds {
        state.withLock { $0.resolvedThresholds[source] ?? $0.thresholds }
    }

    /// Opens the source, then asks `admit` (with the lane and whether the source is live) before its capture
    /// thread starts: the caller can record the lane, announce the source, or decline (nil is returned).
    /// Throws `CaptureError` if the source cannot be opened.
    @discardableResult
    public func add(_ options: SourceOptions, opener: SourceOpener = Pipeline.openDefault,
                    admit: (_ lane: Int, _ live: Bool) -> Bool = { _, _ in true }) throws -> Int? {
        let source = try opener(options)
        let live = source.isLive || options.realtime
        let policy = options.policy ?? (live ? .latest : .lossless)
        let capacity = options.ringCapacity ?? (policy == .latest ? 1 : 2 * max(workerCount, 1) + 2)
        let lane = ring.addSource(capacity: capacity, policy: policy)
        // Registered before `admit`, so that a `remove(lane:)` as soon as the caller knows the lane finds it.
        let handle = CaptureHandle(options: options, source: source, lane: lane, live: live)
        state.withLock { $0.captures[lane] = handle }
        handle.done.enter()
        guard admit(lane, live) else {
            if state.withLock({ $0.captures.removeValue(forKey: lane) }) != nil {
                ring.close(lane: lane, ending: nil, discardingQueued: true)
            }
            source.close()
            handle.done.leave()
            return nil
        }
        let thread = Thread(named: "sl-capture-\(lane)") { [ring] in
            self.capture(handle, ring: ring)
            handle.done.leave()
        }
        thread.start()
        return lane
    }

    /// Stops a running source: discards its queued frames, closes it and waits for its capture thread.
    /// `.removed` follows once the frames already being detected are emitted.
    /// (A source that ended or failed by itself needs no removal: its queued frames are still detected.)
    public func remove(lane: Int) {
        guard let handle = state.withLock({ $0.captures.removeValue(forKey: lane) }) else { return }
        ring.close(lane: lane, ending: .removed(name: handle.options.name, lane: lane), discardingQueued: true)
        handle.stop()
        handle.done.wait()
    }

    /// The lane's counters; nil once it has ended.
    public func stats(lane: Int) -> LaneStats? { ring.stats(lane: lane) }

    /// The first errors of sources that failed after opening (kept for `detect`'s exit status; bounded), each
    /// under its source's name when it is about the input as a whole (two sources may read one input).
    public var sourceFailures: [CaptureError] { state.withLock { $0.failures } }

    /// For a batch run: no more sources will be added. Waits until every source has ended and every
    /// frame is detected and emitted.
    public func finish() {
        ring.seal()
        workersDone.wait()
    }

    /// Drains: stops capture, lets workers finish the frames in flight (queued ones are dropped), waits for them.
    public func stop() {
        let handles = state.withLock { state in
            defer { state.captures = [:] }
            return Array(state.captures.values)
        }
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

    private func capture(_ handle: CaptureHandle, ring: FrameRing<SourceEvent?>) {
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
            end(handle, .ended(name: options.name, lane: handle.lane, live: handle.live))
        } catch {
            let failure = error as? CaptureError ?? CaptureError(input: options.input, reason: "\(error)")
            state.withLock {
                if $0.failures.count < 100 { $0.failures.append(failure.naming(options)) }
            }
            end(handle, .failed(name: options.name, lane: handle.lane, error: failure))
        }
    }

    /// The source ended by itself: its lane drains and then ends with `event`, unless `remove` or `stop`
    /// took the source first.
    private func end(_ handle: CaptureHandle, _ event: SourceEvent) {
        guard state.withLock({ $0.captures.removeValue(forKey: handle.lane) }) != nil else { return }
        ring.close(lane: handle.lane, ending: event)
    }

    private func work(detector: Detector, ring: FrameRing<SourceEvent?>, sink: OrderedSink<SourceEvent?>) {
        while let item = ring.next() {
            switch item {
            case .frame(let job): detect(job, detector: detector, sink: sink)
            case .end(let lane, let total, let ending): sink.finish(lane: lane, total: total, ending: ending)
            }
        }
    }

    private func detect(_ job: DispatchedFrame, detector: Detector, sink: OrderedSink<SourceEvent?>) {
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
            var record = Record.Detections(
                source: frame.sourceID, frame: frame.sequence, seq: job.order, pts: frame.pts, time: Date(),
                captureTime: frame.captureTime, width: frame.width, height: frame.height, latencyMs: 0,
                inferMs: infer / .milliseconds(1),
                dropped: job.droppedBefore, detections: detections, file: frame.file)
            record.lowScore = lowScore
            if frameTap?(frame, detections) != true { frame.pixels.recycle() }
            sink.submit(record, lane: job.lane, order: job.order, capturedAt: frame.captureInstant)
        } catch {
            frame.pixels.recycle()
            StandardError.write("sightline: detection failed on \(frame.sourceID) frame \(frame.sequence): \(error)\n")
            sink.skip(lane: job.lane, order: job.order, droppedBefore: job.droppedBefore)
        }
    }
}

extension CaptureError {
    /// This error under `options.name` when it names the source's input as a whole (not, say, one file of a
    /// directory), so that two sources reading one input are told apart.
    public func naming(_ options: SourceOptions) -> CaptureError {
        input == options.input ? CaptureError(input: options.name, reason: reason) : self
    }
}
