import Capture
import Detector
import Foundation
import FrameRing
import Sink

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
}

/// source -> frame ring -> detector workers -> ordered sink. One capture thread per source and one
/// worker thread per detector engine (one per core by default); workers take frames from all sources fairly.
public final class Pipeline: @unchecked Sendable {
    public typealias SourceOpener = @Sendable (SourceOptions) throws -> any FrameSource

    private let ring: FrameRing
    private let sink: OrderedSink
    private let lock = NSLock()
    private var thresholds: Thresholds
    private var workers: [Thread] = []
    private let workersDone = DispatchGroup()
    private var captures: [Int: CaptureHandle] = [:]
    private var failures: [CaptureError] = []
    private let onSourceEvent: @Sendable (SourceEvent) -> Void

    /// A source ending, by error or at its end of stream.
    public enum SourceEvent: Sendable {
        case ended(name: String, lane: Int)
        case failed(name: String, lane: Int, error: CaptureError)
    }

    private final class CaptureHandle: @unchecked Sendable {
        let options: SourceOptions
        let source: any FrameSource
        let lane: Int
        let done = DispatchGroup()
        init(options: SourceOptions, source: any FrameSource, lane: Int) {
            self.options = options
            self.source = source
            self.lane = lane
        }
    }

    /// Builds `threads` detectors over `model` and starts their worker threads.
    public init(model: Model, threads: Int, thresholds: Thresholds,
                onSourceEvent: @escaping @Sendable (SourceEvent) -> Void = { _ in },
                emit: @escaping @Sendable (DetectionRecord) -> Void) throws {
        ring = FrameRing()
        sink = OrderedSink(emit: emit)
        self.thresholds = thresholds
        self.onSourceEvent = onSourceEvent
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

    public var currentThresholds: Thresholds {
        get { lock.withLock { thresholds } }
        set { lock.withLock { thresholds = newValue } }
    }

    /// Opens the source and starts its capture thread. Throws `CaptureError` if it cannot be opened.
    @discardableResult
    public func add(_ options: SourceOptions, opener: SourceOpener = Pipeline.openDefault) throws -> Int {
        let source = try opener(options)
        let live = source.isLive || options.realtime
        let policy = options.policy ?? (live ? .latest : .lossless)
        let capacity = options.ringCapacity ?? (policy == .latest ? 1 : 2 * max(workers.count, 1) + 2)
        let lane = ring.addSource(capacity: capacity, policy: policy)
        let handle = CaptureHandle(options: options, source: source, lane: lane)
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
    /// (A source that ended or failed by itself needs no removal: its queued frames are still detected.)
    public func remove(lane: Int) {
        guard let handle = lock.withLock({ captures.removeValue(forKey: lane) }) else { return }
        ring.discard(lane: lane)
        handle.source.close()
        handle.done.wait()
    }

    public func stats(lane: Int) -> FrameRing.LaneStats { ring.stats(lane: lane) }

    /// Errors of sources that failed after opening.
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
        for handle in handles { handle.source.close() }
        for handle in handles { ring.close(lane: handle.lane) }
        ring.stop()
        workersDone.wait()
        for handle in handles { handle.done.wait() }
    }

    /// V4L2 devices through libv4l2; files, image sequences and stream URLs through FFmpeg.
    public static let openDefault: SourceOpener = { options in
        if options.input.hasPrefix("/dev/video") || options.input.hasPrefix("/dev/v4l/") {
            return try V4L2Source(device: options.input, sourceID: options.name, width: options.captureWidth,
                                  height: options.captureHeight, fps: options.captureFPS)
        }
        return try FFmpegSource(input: options.input, sourceID: options.name, ioTimeout: options.ioTimeout)
    }

    private func capture(_ handle: CaptureHandle, ring: FrameRing) {
        let options = handle.options
        let clock = ContinuousClock()
        var pacing: (start: ContinuousClock.Instant, firstPTS: Double)? = nil
        var lastAccepted: ContinuousClock.Instant? = nil
        do {
            while let decoded = try handle.source.next() {
                var frame = decoded
                if options.realtime {
                    let fps = options.realtimeFPS ?? handle.source.frameRate ?? 25
                    let position = options.realtimeFPS == nil ? (frame.pts ?? Double(frame.sequence) / fps) : Double(frame.sequence) / fps
                    if pacing == nil { pacing = (clock.now, position) }
                    let due = pacing!.start + .seconds(max(0, position - pacing!.firstPTS))
                    if due > clock.now { Thread.sleep(forTimeInterval: Double((due - clock.now).components.attoseconds) / 1e18 + Double((due - clock.now).components.seconds)) }
                    frame = Frame(sourceID: frame.sourceID, sequence: frame.sequence, pts: frame.pts, captureTime: Date(),
                                  captureInstant: clock.now, pixels: frame.pixels)
                }
                if let limit = options.fpsLimit, let last = lastAccepted, frame.captureInstant - last < .seconds(1 / limit) {
                    frame.pixels.recycle()
                    continue
                }
                lastAccepted = frame.captureInstant
                guard ring.push(frame, lane: handle.lane) else { break }
            }
            ring.close(lane: handle.lane)
            lock.withLock { captures[handle.lane] = nil }
            onSourceEvent(.ended(name: options.name, lane: handle.lane))
        } catch {
            let failure = error as? CaptureError ?? CaptureError(input: options.input, reason: "\(error)")
            lock.withLock {
                failures.append(failure)
                captures[handle.lane] = nil
            }
            ring.close(lane: handle.lane)
            onSourceEvent(.failed(name: options.name, lane: handle.lane, error: failure))
        }
    }

    private func work(detector: Detector, ring: FrameRing, sink: OrderedSink) {
        while let job = ring.next() {
            let frame = job.frame
            let thresholds = currentThresholds
            let started = ContinuousClock.now
            do {
                let detections = try detector.detect(frame.pixels, threshold: thresholds.floor)
                    .filter { thresholds.accepts(label: $0.label, score: $0.score) }
                let infer = ContinuousClock.now - started
                let record = DetectionRecord(
                    source: frame.sourceID, frame: frame.sequence, seq: job.order, pts: frame.pts, time: Date(),
                    captureTime: frame.captureTime, width: frame.width, height: frame.height, latencyMs: 0,
                    inferMs: Double(infer.components.seconds) * 1000 + Double(infer.components.attoseconds) / 1e15,
                    dropped: job.droppedBefore, detections: detections)
                frame.pixels.recycle()
                sink.submit(record, lane: job.lane, order: job.order, capturedAt: frame.captureInstant)
            } catch {
                frame.pixels.recycle()
                StandardError.write("sightline: detection failed on \(frame.sourceID) frame \(frame.sequence): \(error)\n")
                sink.skip(lane: job.lane, order: job.order)
            }
        }
    }
}
