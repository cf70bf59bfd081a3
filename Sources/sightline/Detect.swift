import ArgumentParser
import Capture
import Daemon
import Detector
import Foundation
import FrameRing
import Synchronization
import Tracking
import Values

struct Detect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Detect objects in videos, images or streams; one JSON line per frame on stdout.",
        discussion: """
            Inputs run concurrently on one pool of worker threads; each input's records come out in frame order. \
            An input given again runs again under a name of its own, its records' source being the input with #2 (#3...) added.
            """)

    @Option(help: "Frozen graph (.pb) of an SSD MobileNetV2 model.")
    var model: String = ModelLocation.defaultModel

    @Option(help: "Label file: a TF label_map.pbtxt or one name per line (default: the model's sidecar, else COCO's for a 90-class model, else class_<id>).")
    var labels: String?

    @Option(help: "Numeric precision: auto (the fastest this CPU and model are ready for), f32, bf16 or int8.")
    var precision: PrecisionChoice = .auto

    @Option(help: "Minimum score of a reported detection.")
    var threshold: Float = 0.5

    @Option(help: "Detector worker threads; 0 means one per core.")
    var threads: Int = 0

    @Flag(help: "Pace files at their native frame rate and treat them as live (frames may be dropped).")
    var realtime = false

    @Option(help: "With --realtime: pace at this frame rate instead of the file's own.")
    var fps: Double?

    @Option(help: "What a full frame ring does: lossless (wait) or latest (drop the oldest). Default: lossless for files, latest for live.")
    var policy: DropPolicy?

    @Option(help: "Frames each input's ring holds (default: 2 per worker + 2 for lossless, 1 for latest).")
    var ringCapacity: Int?

    @Option(help: "Seconds a network read may block before the stream counts as stalled.")
    var ioTimeout: Double = 10

    @Option(help: "V4L2 cameras: capture size as WIDTHxHEIGHT (default: negotiated, 640x480 or the largest up to 1280x720).")
    var size: String?

    @Option(help: "V4L2 cameras: capture frame rate (default: up to 30).")
    var captureFps: Double?

    @Flag(help: "Track objects: add track_id to detections and write object_start, object_end and presence records (docs/SCHEMA.md).")
    var track = false

    @Option(help: "With --track: frames a track must be seen in, within --track-window seconds, to be confirmed.")
    var trackMinHits = TrackingParameters.defaults.minHits

    @Option(help: "With --track: seconds within which --track-min-hits frames confirm a track.")
    var trackWindow = TrackingParameters.defaults.windowSeconds

    @Option(help: "With --track: seconds a track may go unseen before it ends.")
    var trackMaxAge = TrackingParameters.defaults.maxAgeSeconds

    @Option(help: "With --track: least overlap (IoU) of a detection with a track's predicted box to continue it.")
    var trackIou = TrackingParameters.defaults.iouThreshold

    @Option(help: ArgumentHelp("Also write every frame with detections, its boxes, labels and scores drawn, as a JPEG into this directory (created if missing).",
                               valueName: "dir"))
    var annotate: String?

    @Argument(help: "Video files, images, directories of images, image sequences (img%03d.png), stream URLs or V4L2 devices.")
    var inputs: [String]

    mutating func validate() throws {
        guard !inputs.contains("") else { throw ValidationError("an input is empty: give a file, directory, pattern, URL or device") }
        guard annotate != "" else { throw ValidationError("--annotate is empty: give the directory to write the annotated frames into") }
        try checkRange("--threads", threads, ConfigLimits.workers, zeroMeaning: "one per core")
        try checkRange("--threshold", threshold, 0...1)
        try ringCapacity.map { try checkRange("--ring-capacity", $0, ConfigLimits.ringCapacity) }
        try fps.map { try checkRange("--fps", $0, ConfigLimits.framesPerSecond) }
        try checkRange("--io-timeout", ioTimeout, ConfigLimits.ioTimeoutSeconds, unit: " seconds")
        guard size == nil || captureSize != nil else {
            throw ValidationError("--size must be WIDTHxHEIGHT with sides up to \(ConfigLimits.captureSide.upperBound), e.g. 1280x720")
        }
        try captureFps.map { try checkRange("--capture-fps", $0, ConfigLimits.framesPerSecond) }
        try checkRange("--track-min-hits", trackMinHits, TrackingParameters.minHitsRange)
        try checkRange("--track-window", trackWindow, TrackingParameters.secondsRange, unit: " seconds")
        try checkRange("--track-max-age", trackMaxAge, TrackingParameters.secondsRange, unit: " seconds")
        try checkRange("--track-iou", trackIou, TrackingParameters.iouRange)
    }

    private var captureSize: (width: Int, height: Int)? {
        let parts = (size ?? "").split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]),
              ConfigLimits.captureSide.contains(width), ConfigLimits.captureSide.contains(height) else { return nil }
        return (width, height)
    }

    func run() throws {
        let threads = workerThreads(threads)
        let loaded = try failingCleanly { try Model(path: model, labelsPath: labels, precision: precision) }
        if let warning = loaded.calibrationWarning { reportError("WARNING: \(warning)") }
        reportModelWarnings(loaded)
        signal(SIGPIPE, SIG_IGN)
        let output = StandardOutput()
        let done = DispatchSemaphore(value: 0)
        // SIGHTLINE_TRACK_TIMING=1: the tracker's CPU time against the whole run's, on stderr (docs/BENCHMARKS.md).
        let timing = track && ProcessInfo.processInfo.environment["SIGHTLINE_TRACK_TIMING"] != nil ? TrackerTiming() : nil
        // Records name the input, but never its password; an input given again gets a name of its own.
        let redacted = inputs.map(Redaction.redactingPasswords)
        let names = Self.distinctNames(redacted)
        for (index, (given, name)) in zip(redacted, names).enumerated() where name != given {
            let repeated = inputs[..<index].contains(inputs[index])
            reportError(repeated ? "\(given) is given more than once: the records of this run of it name it \(name)"
                                 : "\(given) differs from an earlier input only in its password: the records of this one name it \(name)")
        }
        // Enough copies for every frame a lane can have in flight: its ring, and one per worker.
        let annotated = try annotate.map { directory in
            try failingCleanly { try AnnotatedFrames(directory: directory, inputs: names,
                                                      copiesHeld: names.count * ((ringCapacity ?? 2 * threads + 2) + threads + 2)) }
        }
        var tap: Pipeline.FrameTap?
        if let annotated {
            tap = { frame, detections in
                annotated.keep(frame, detections: detections)
                return false
            }
        }
        let tracking = track ? TrackingStage(defaults: TrackingParameters(minHits: trackMinHits, windowSeconds: trackWindow,
                                                                          maxAgeSeconds: trackMaxAge, iouThreshold: trackIou)) : nil
        let thresholds = Thresholds(defaultScore: threshold, lowScoreFloor: track ? TrackingStage.lowScoreFloor : nil)
        let pipeline = try failingCleanly {
            // Both run under the sink's lock, in order per input; an input's tracks end after its last record.
            try Pipeline(model: loaded, threads: threads, thresholds: thresholds, onSourceEvent: { event in
                guard let tracking else { return }
                let ended: [TrackEvent] = switch event {
                case .ended(let name, _, let live): tracking.end(source: name, reason: live ? .sourceDown : .endOfFile)
                case .failed(let name, _, _), .removed(let name, _): tracking.end(source: name, reason: .sourceDown)
                }
                for event in ended { output.write(event.record.jsonLine()) }
            }, frameTap: tap) { record in
                if let tracking {
                    let started = timing?.threadCPU()
                    let (tracked, events) = tracking.process(record)
                    if let started, let timing { timing.add(timing.threadCPU() - started) }
                    for event in events { output.write(event.record.jsonLine()) }
                    annotated?.write(tracked)
                    output.write(Record.detections(tracked).jsonLine())
                } else {
                    annotated?.write(record)
                    output.write(Record.detections(record).jsonLine())
                }
                // The reader went away (e.g. `| head`): nothing more is wanted, even from a live stream.
                if output.isClosed { done.signal() }
            }
        }
        var failed = false
        let capture = captureSize
        for (input, name) in zip(inputs, names) {
            var options = SourceOptions(name: name, input: input, policy: policy, ringCapacity: ringCapacity, realtime: realtime,
                                        realtimeFPS: fps, ioTimeout: .milliseconds(Int(ioTimeout * 1000)))
            (options.captureWidth, options.captureHeight) = (capture?.width, capture?.height)
            options.captureFPS = captureFps
            do {
                try pipeline.add(options)
            } catch let error as CaptureError {
                reportError(error.naming(options))
                failed = true
            } catch {
                reportError(error)
                failed = true
            }
        }
        Thread(named: "sl-finish") {
            pipeline.finish()
            done.signal()
        }.start()
        done.wait()
        if output.isClosed {
            pipeline.stop()
            if let failure = output.failure {
                reportError("cannot write the output: \(failure)")
                throw ExitCode(1)
            }
            return
        }
        if let timing { reportError(timing.report()) }
        for failure in pipeline.sourceFailures {
            reportError(failure)
            failed = true
        }
        if let failure = annotated?.failure {
            reportError(failure)
            failed = true
        }
        if failed { throw ExitCode(1) }
    }
}

extension Detect {
    /// `names` with every repeat renamed `<name>#2`, `#3`... (the first number no input is called), so that each
    /// input's records, tracks and annotated frames stay its own.
    static func distinctNames(_ names: [String]) -> [String] {
        var taken = Set(names), seen: Set<String> = []
        return names.map { name in
            guard !seen.insert(name).inserted else { return name }
            var suffix = 2
            while taken.contains("\(name)#\(suffix)") { suffix += 1 }
            taken.insert("\(name)#\(suffix)")
            return "\(name)#\(suffix)"
        }
    }
}

extension DropPolicy: ExpressibleByArgument {}

/// CPU time spent in the tracker, for measuring its share of a run.
final class TrackerTiming: Sendable {
    private let total = Mutex<Double>(0)

    func threadCPU() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    func add(_ seconds: Double) { total.withLock { $0 += seconds } }

    func report() -> String {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let process = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        let tracker = total.withLock { $0 }
        return String(format: "tracking took %.1f ms of %.1f ms process CPU time (%.3f %%)", tracker * 1000, process * 1000,
                      100 * tracker / max(process, 1e-9))
    }
}

/// stdout for JSON lines: written whole, line by line, so a reader sees complete records as they come.
/// A reader that goes away (EPIPE) ends output quietly, as `head` expects; any other write error
/// (a full disk, say) ends it too, and is kept to be reported. A line cut short by the error is taken back
/// off a regular file, so the output holds whole lines or nothing.
final class StandardOutput: Sendable {
    /// Held across each whole write, so lines from different threads never interleave.
    private let state = Mutex(State())

    private struct State {
        var closed = false
        var error: String?
    }

    var isClosed: Bool { state.withLock { $0.closed } }
    /// Why output stopped, unless the reader simply went away.
    var failure: String? { state.withLock { $0.error } }

    /// Truncates the last `bytes` written to stdout, if it is a regular file.
    private static func takeBack(_ bytes: Int) {
        var info = stat()
        guard fstat(1, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return }
        let end = lseek(1, 0, SEEK_CUR)
        if end >= bytes { _ = ftruncate(1, end - off_t(bytes)) }
    }

    func write(_ line: String) {
        state.withLock { state in
            guard !state.closed else { return }
            let bytes = Array(line.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Foundation.write(1, $0.baseAddress! + offset, $0.count - offset) }
                if n >= 0 {
                    offset += n
                    continue
                }
                switch errno {
                case EINTR:
                    continue
                case EAGAIN:
                    var ready = pollfd(fd: 1, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&ready, 1, 1000)
                case EPIPE:
                    state.closed = true
                    return
                default:
                    state.error = String(cString: strerror(errno))
                    state.closed = true
                    if offset > 0 { Self.takeBack(offset) }
                    return
                }
            }
        }
    }
}

/// Refuses an option outside its documented range (docs/CONFIG.md), naming the range.
func checkRange<Value: Comparable>(_ option: String, _ value: Value, _ range: ClosedRange<Value>, unit: String = "",
                                   zeroMeaning: String? = nil) throws {
    guard range.contains(value) else {
        let low = zeroMeaning.map { "\(range.lowerBound) (\($0))" } ?? "\(range.lowerBound)"
        throw ValidationError("\(option) must be between \(low) and \(range.upperBound)\(unit), got \(value)")
    }
}

/// One line on stderr naming the problem.
func reportError(_ message: Any) {
    StandardError.write("sightline: \(Redaction.redactingPasswords("\(message)"))\n")
}

/// A failure of the command itself, worded for the user.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func reportModelWarnings(_ model: Model) {
    for warning in model.warnings { reportError("WARNING: \(warning)") }
    let slow = model.referenceKernels
    guard !slow.isEmpty else { return }
    reportError("WARNING: \(slow.count) layer(s) run on oneDNN's reference kernels, about 100x slower: \(slow.joined(separator: "; "))")
}
