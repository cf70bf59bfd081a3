import ArgumentParser
import Capture
import Daemon
import Detector
import Foundation
import FrameRing
import Sink

struct Detect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Detect objects in videos, images or streams; one JSON line per frame on stdout.",
        discussion: "Inputs run concurrently on one pool of worker threads; each input's records come out in frame order.")

    @Option(help: "Frozen graph (.pb) of an SSD MobileNetV2 model.")
    var model: String = ModelLocation.defaultModel

    @Option(help: "Label file: a TF label_map.pbtxt or one name per line (default: the model's sidecar, else COCO).")
    var labels: String?

    @Option(help: "Minimum score of a reported detection.")
    var threshold: Float = 0.5

    @Option(help: "Detector worker threads (default: one per core).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

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

    @Argument(help: "Video files, image files, stream URLs or V4L2 devices.")
    var inputs: [String]

    mutating func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard (0...1).contains(threshold) else { throw ValidationError("--threshold must be between 0 and 1") }
        guard ringCapacity.map({ $0 >= 1 }) ?? true else { throw ValidationError("--ring-capacity must be at least 1") }
        guard fps.map({ (0.001...1000).contains($0) }) ?? true else { throw ValidationError("--fps must be between 0.001 and 1000") }
        guard (0.001...86400).contains(ioTimeout) else { throw ValidationError("--io-timeout must be between 0.001 and 86400 seconds") }
        guard size == nil || captureSize != nil else { throw ValidationError("--size must be WIDTHxHEIGHT, e.g. 1280x720") }
        guard captureFps.map({ (0.001...1000).contains($0) }) ?? true else { throw ValidationError("--capture-fps must be between 0.001 and 1000") }
    }

    private var captureSize: (width: Int, height: Int)? {
        let parts = (size ?? "").split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]),
              (1...16384).contains(width), (1...16384).contains(height) else { return nil }
        return (width, height)
    }

    func run() throws {
        let loaded = try failingCleanly { try Model(path: model, labelsPath: labels) }
        reportModelWarnings(loaded)
        signal(SIGPIPE, SIG_IGN)
        let output = StandardOutput()
        let done = DispatchSemaphore(value: 0)
        let pipeline = try failingCleanly {
            try Pipeline(model: loaded, threads: threads, thresholds: Thresholds(defaultScore: threshold)) { record in
                output.write(record.jsonLine())
                // The reader went away (e.g. `| head`): nothing more is wanted, even from a live stream.
                if output.isClosed { done.signal() }
            }
        }
        var failed = false
        let capture = captureSize
        for input in inputs {
            var options = SourceOptions(name: input, input: input, policy: policy, ringCapacity: ringCapacity, realtime: realtime,
                                        realtimeFPS: fps, ioTimeout: .milliseconds(Int(ioTimeout * 1000)))
            (options.captureWidth, options.captureHeight) = (capture?.width, capture?.height)
            options.captureFPS = captureFps
            do {
                try pipeline.add(options)
            } catch {
                reportError(error)
                failed = true
            }
        }
        Thread {
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
        for failure in pipeline.sourceFailures {
            reportError(failure)
            failed = true
        }
        if failed { throw ExitCode(1) }
    }
}

extension DropPolicy: ExpressibleByArgument {}

/// stdout for JSON lines: written whole, line by line, so a reader sees complete records as they come.
/// A reader that goes away (EPIPE) ends output quietly, as `head` expects; any other write error
/// (a full disk, say) ends it too, and is kept to be reported.
final class StandardOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var closed = false
    private var error: String?

    var isClosed: Bool { lock.withLock { closed } }
    /// Why output stopped, unless the reader simply went away.
    var failure: String? { lock.withLock { error } }

    func write(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
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
                closed = true
                return
            default:
                error = String(cString: strerror(errno))
                closed = true
                return
            }
        }
    }
}

/// One line on stderr naming the problem.
func reportError(_ message: Any) {
    StandardError.write("sightline: \(message)\n")
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

