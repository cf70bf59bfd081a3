import CV4L2
import Foundation
import Values

/// Frames from a V4L2 camera (`/dev/video*` or a stable `/dev/v4l/by-id/...` link), captured by mmap streaming.
///
/// The camera's pixel format is chosen for cheap, exact conversion: YUYV when it reaches the wanted size and
/// rate, else motion JPEG (decoded by libavcodec), else RGB24 converted by libv4lconvert from whatever it sends.
/// Used from one capture thread; only `close()` may be called from another thread.
public final class V4L2Source: FrameSource, @unchecked Sendable {
    /// The device path as given (a by-id link stays a link, so messages name what the user configured).
    public let input: String
    /// A camera runs in real time whatever the consumer does.
    public var isLive: Bool { true }
    /// The frame rate the driver accepted, when it reports one.
    public let frameRate: Double?
    /// Frame size the driver accepted.
    public let width: Int
    public let height: Int
    /// The format frames arrive in: "YUYV", "MJPG", or "RGB3" when libv4lconvert converts.
    public let pixelFormat: String

    /// Longest wait for a frame once streaming; a camera at any sensible rate delivers well within it.
    private static let stallTimeout = Duration.seconds(2)
    /// Some cameras take a few seconds after STREAMON to deliver their first frame.
    private static let startTimeout = Duration.seconds(5)
    private static let bufferCount: UInt32 = 4
    /// Driver timestamps further than this from now are treated as broken.
    private static let maximumTimestampAge: Int64 = 10_000_000_000

    private let sourceID: String
    private let pool: PixelBufferPool
    private let converter: V4L2FrameConverter
    /// Signalled by `close()` so a `next()` blocked in poll() returns at once.
    private let wakeup: Int32
    /// Held by `next()` and `close()`, so close waits for the woken `next()` to let go of the device.
    private let lock = NSLock()
    /// nil once closed.
    private var device: V4L2Device?
    private var sequence = 0
    /// Monotonic capture time of the first frame, in nanoseconds: the origin of `pts`.
    private var firstCapture: Int64?

    /// Opens `device`, negotiates a format and starts streaming; throws `CaptureError`.
    /// - Parameters:
    ///   - sourceID: the name frames carry; defaults to `device`.
    ///   - width, height, fps: what to ask for; the nearest the camera offers is used. Without them:
    ///     640x480 (else the largest size within 1280x720) at up to 30 fps.
    public init(device path: String, sourceID: String? = nil, width: Int? = nil, height: Int? = nil, fps: Double? = nil,
                pool: PixelBufferPool = PixelBufferPool()) throws {
        LibraryLogs.configured
        if let size = [width, height].compactMap({ $0 }).first(where: { $0 <= 0 }) {
            throw CaptureError(input: path, reason: "invalid frame size \(size)")
        }
        if let fps, !(fps > 0 && fps <= 1000) {
            throw CaptureError(input: path, reason: "invalid frame rate \(fps)")
        }
        input = path
        self.sourceID = sourceID ?? path
        self.pool = pool

        let device = try V4L2Device(path: path)
        let formats = device.formats(width: width, height: height, fps: fps)
        guard let mode = V4L2Negotiation.choose(from: formats, width: width, height: height, fps: fps) else {
            let offered = formats.filter { !$0.emulated }.map(\.pixelFormat.description)
            throw CaptureError(input: path, reason: "no pixel format Sightline can convert (the camera offers "
                               + (offered.isEmpty ? "none" : offered.joined(separator: ", ")) + ")")
        }
        let accepted = try device.setFormat(mode)
        frameRate = device.setInterval(mode.interval)
        self.width = Int(accepted.width)
        self.height = Int(accepted.height)
        pixelFormat = mode.pixelFormat.description
        converter = try V4L2FrameConverter(input: path, pixelFormat: mode.pixelFormat,
                                           width: Int(accepted.width), height: Int(accepted.height),
                                           bytesPerLine: Int(accepted.bytesperline), colorimetry: V4L2Colorimetry(accepted))
        try device.startStreaming(count: Self.bufferCount)

        wakeup = sl_eventfd()
        guard wakeup >= 0 else {
            throw CaptureError(input: path, reason: "cannot create an eventfd: \(String(cString: strerror(errno)))")
        }
        self.device = device
    }

    deinit { Glibc.close(wakeup) }

    /// The next frame `accept` takes, or nil after `close()`. Throws `CaptureError` when the camera stalls or disconnects.
    public func next(accepting accept: (ContinuousClock.Instant) -> Bool) throws -> Frame? {
        lock.lock()
        defer { lock.unlock() }
        guard let device else { return nil }
        let timeout = sequence == 0 ? Self.startTimeout : Self.stallTimeout
        var deadline = ContinuousClock.now + timeout

        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                throw CaptureError(input: input, reason: "camera stopped delivering frames (none for \(timeout.components.seconds) s)")
            }
            var waits = (pollfd(fd: device.fd, events: Int16(POLLIN), revents: 0),
                         pollfd(fd: wakeup, events: Int16(POLLIN), revents: 0))
            let ready = withUnsafeMutablePointer(to: &waits) {
                $0.withMemoryRebound(to: pollfd.self, capacity: 2) { poll($0, 2, Self.milliseconds(remaining)) }
            }
            if ready < 0 {
                if errno == EINTR { continue }
                throw CaptureError(input: input, reason: "waiting for a frame failed: \(String(cString: strerror(errno)))")
            }
            if waits.1.revents != 0 { return nil }
            if ready == 0 { continue }
            // Buffers stay queued while streaming, so an error condition means the device is gone.
            if waits.0.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { throw device.disconnected() }

            guard let buffer = try device.dequeue() else { continue }
            // The three clocks read together, before conversion, so the frame's age carries over exactly.
            let now = Self.monotonicNanoseconds()
            let instant = ContinuousClock.now
            let wallClock = Date()
            // Age of the frame by the driver's clock, carried over to wall time and ContinuousClock without
            // assuming which kernel clock ContinuousClock reads.
            var capture = now
            if buffer.flags & UInt32(V4L2_BUF_FLAG_TIMESTAMP_MASK) == UInt32(V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC) {
                let stamp = Int64(buffer.timestamp.tv_sec) * 1_000_000_000 + Int64(buffer.timestamp.tv_usec) * 1000
                if (0...Self.maximumTimestampAge).contains(now - stamp) { capture = stamp }
            }
            let age = now - capture
            let captureInstant = instant - .nanoseconds(age)
            // A frame nobody wants (fps_limit) is handed back before the costly conversion.
            guard accept(captureInstant) else {
                try device.requeue(buffer)
                sequence += 1
                deadline = ContinuousClock.now + Self.stallTimeout
                continue
            }
            let converted: PixelBuffer?
            do {
                // A buffer the driver flags as damaged is dropped, like one too short to hold a frame.
                converted = buffer.flags & UInt32(V4L2_BUF_FLAG_ERROR) != 0 ? nil : try converter.convert(buffer.bytes, pool: pool)
            } catch {
                try device.requeue(buffer)
                throw error
            }
            try device.requeue(buffer)
            guard let pixels = converted else { continue }

            let first = firstCapture ?? capture
            firstCapture = first
            let frame = Frame(sourceID: sourceID, sequence: sequence, pts: Double(capture - first) / 1e9,
                              captureTime: wallClock - Double(age) / 1e9,
                              captureInstant: captureInstant, pixels: pixels)
            sequence += 1
            return frame
        }
    }

    /// Stops streaming and releases the device; idempotent. From another thread it also wakes a blocked
    /// `next()`, which then returns nil.
    public func close() {
        var one: UInt64 = 1
        _ = write(wakeup, &one, MemoryLayout<UInt64>.size)
        lock.lock()
        device = nil
        lock.unlock()
    }

    private static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        // Rounded up, so poll() never returns just before the deadline and spins.
        return Int32(clamping: seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }

    private static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
