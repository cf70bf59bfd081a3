import CFFmpeg
import Foundation
import Synchronization
import Values

/// Frames from anything libavformat opens: files, images, image sequences, network streams, devices.
///
/// Every frame is converted to packed RGB24 exactly as
/// `ffmpeg -i INPUT -f rawvideo -pix_fmt rgb24 -sws_flags bilinear` would, because the
/// detector's parity fixtures come from that command.
/// Used from one capture thread at a time; only `close()` may be called from another thread, and it never waits for
/// a blocked read: every read is bounded by `ioTimeout` and notices `close()` within a fraction of a second.
public final class FFmpegSource: Sendable {
    /// The input as given.
    public let input: String
    /// Network streams and devices run in real time; files and image sequences can be read at any pace.
    public let isLive: Bool
    /// The stream's average (or else real) frame rate, when the container says.
    public let frameRate: Double?
    /// Packets the decoder rejected; they are skipped so one damaged packet does not end a stream.
    public var corruptPackets: Int { corrupt.load(ordering: .relaxed) }
    /// Counted by `next()`; an atomic so that reading it never waits for a blocked read.
    private let corrupt = Atomic<Int>(0)

    private let sourceID: String
    private let pool: PixelBufferPool
    private let opened = ContinuousClock.now
    private let interrupt: Interrupt
    /// Held by `next()`; `close()` frees the context only if it can take the lock at once, else the aborted
    /// `next()` frees it on its way out.
    private let decoding: Mutex<Decoding>

    private struct Decoding {
        /// nil once closed.
        var context: Context?
        var sequence = 0
        /// For network streams: a frame's capture time is its timestamp on the local clock, not when it was decoded.
        var streamClock: StreamClock?
    }

    /// Opens `input` and its best video stream; throws `CaptureError`.
    /// - Parameters:
    ///   - sourceID: the name frames carry; defaults to `input`.
    ///   - ioTimeout: longest any single open or read may block.
    public init(input: String, sourceID: String? = nil, ioTimeout: Duration = .seconds(10),
                pool: PixelBufferPool = PixelBufferPool()) throws {
        LibraryLogs.configured
        self.input = input
        self.sourceID = sourceID ?? input
        self.pool = pool
        let network = Self.isNetwork(input)
        // A camera or capture card (a character device such as /dev/video0) is live; /dev/stdin, a pipe or a FIFO is
        // read like a file, every frame, however it is named.
        isLive = network || FileType(path: input) == .characterDevice
        interrupt = Interrupt(timeout: ioTimeout)
        let context = try Context(input: input, network: network, interrupt: interrupt)
        frameRate = context.frameRate
        decoding = Mutex(Decoding(context: context, streamClock: network ? StreamClock() : nil))
    }

    /// The next decoded frame `accept` takes, or nil at the end of the stream or after `close()`; throws `CaptureError`.
    /// Frames it declines are decoded (later frames depend on them) but not converted.
    public func next(accepting accept: (ContinuousClock.Instant) -> Bool) throws -> Frame? {
        try decoding.withLock { state in try decode(&state, accepting: accept) }
    }

    private func decode(_ state: inout sending Decoding, accepting accept: (ContinuousClock.Instant) -> Bool) throws -> Frame? {
        guard let context = state.context else { return nil }
        if interrupt.aborted.load(ordering: .relaxed) {
            state.context = nil
            return nil
        }
        while true {
            switch avcodec_receive_frame(context.decoder, context.frame) {
            case 0:
                defer { av_frame_unref(context.frame) }
                var captureTime = Date()
                var captureInstant = ContinuousClock.now
                let timestamp = context.frame.pointee.best_effort_timestamp
                let pts = timestamp == sl_av_nopts_value() ? nil : Double(timestamp) * context.timeBase
                if let pts, var clock = state.streamClock {
                    let age = clock.age(pts: pts, arrival: (captureInstant - opened) / .seconds(1))
                    state.streamClock = clock
                    captureTime -= age
                    captureInstant -= .microseconds(Int64(age * 1_000_000))
                }
                guard accept(captureInstant) else {
                    state.sequence += 1
                    continue
                }
                let pixels = try context.convert(input: input, pool: pool)
                let frame = Frame(sourceID: sourceID, sequence: state.sequence, pts: pts,
                                  captureTime: captureTime, captureInstant: captureInstant, pixels: pixels)
                state.sequence += 1
                return frame
            case sl_averror_eof():
                return nil
            case sl_averror_eagain():
                // After the flush the decoder never asks for more input; guard against one that does.
                if context.draining { return nil }
            default:
                // A frame that failed to decode: skip it. Once draining there is no later data to recover with.
                corrupt.add(1, ordering: .relaxed)
                if context.draining { return nil }
                continue
            }

            interrupt.arm()
            let status = av_read_frame(context.format, context.packet)
            if status == sl_averror_eof() {
                // A nil packet flushes the decoder, so the frames it still holds come out.
                avcodec_send_packet(context.decoder, nil)
                context.draining = true
                continue
            }
            if status < 0 {
                if interrupt.aborted.load(ordering: .relaxed) {
                    state.context = nil
                    return nil
                }
                throw interrupt.error(status, doing: "reading", input: input)
            }
            if context.packet.pointee.stream_index == context.streamIndex,
               avcodec_send_packet(context.decoder, context.packet) < 0 {
                corrupt.add(1, ordering: .relaxed)
            }
            av_packet_unref(context.packet)
        }
    }

    /// Releases the input (as does dropping the source); idempotent, and never blocks.
    /// From another thread it also aborts a read in progress, which then returns nil and releases the input.
    public func close() {
        interrupt.aborted.store(true, ordering: .relaxed)
        decoding.withLockIfAvailable { $0.context = nil }
    }

    private static func isNetwork(_ input: String) -> Bool {
        guard let range = input.range(of: "://") else { return false }
        return input[..<range.lowerBound].lowercased() != "file"
    }
}

/// What the libav interrupt callback consults while a call blocks: a per-call deadline, and an
/// abort flag `close()` may raise from any thread.
final class Interrupt: Sendable {
    let aborted = Atomic<Bool>(false)
    private let deadline = Atomic<UInt64>(.max)
    /// Stays set: an interrupted AVIOContext keeps failing later reads with the same error.
    private let expired = Atomic<Bool>(false)
    private let timeoutNanos: UInt64

    init(timeout: Duration) {
        // Capped at about 136 years so deadline arithmetic cannot overflow.
        let (seconds, attoseconds) = timeout.components
        timeoutNanos = UInt64(min(max(0, seconds), 1 << 32)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    var timeoutMicros: UInt64 { timeoutNanos / 1000 }

    /// Starts the deadline for the next blocking call.
    func arm() {
        deadline.store(Self.now() + timeoutNanos, ordering: .relaxed)
    }

    /// The callback's answer: true stops the blocked libav call.
    func shouldStop() -> Bool {
        if aborted.load(ordering: .relaxed) { return true }
        guard Self.now() >= deadline.load(ordering: .relaxed) else { return false }
        expired.store(true, ordering: .relaxed)
        return true
    }

    /// The CaptureError for a failed libav call, naming a timeout when the deadline caused it.
    func error(_ status: Int32, doing: String, input: String) -> CaptureError {
        // The protocol's own socket timeout (set to the same length) may fire before the callback does.
        if expired.load(ordering: .relaxed) || status == sl_averror_etimedout() {
            let seconds = Double(timeoutNanos) / 1e9
            return CaptureError(input: input, reason: "\(doing) timed out after \(String(format: "%g", seconds)) s")
        }
        return CaptureError(input: input, reason: "\(doing) failed: \(averrorText(status))")
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// The libav objects of one open input. Freed together in deinit, which also cleans up after a failed open.
private final class Context {
    let interrupt: Interrupt
    private(set) var format: UnsafeMutablePointer<AVFormatContext>?
    /// Set for FIFOs and pipes (the format context reads through it); freed after the format context.
    private var pipe: PipeReader?
    private(set) var decoder: UnsafeMutablePointer<AVCodecContext>?
    // Reused for every packet and frame so decoding allocates nothing per frame.
    let packet: UnsafeMutablePointer<AVPacket>
    let frame: UnsafeMutablePointer<AVFrame>
    private(set) var streamIndex: Int32 = -1
    private(set) var timeBase = 0.0
    private(set) var frameRate: Double?
    var draining = false
    private let scaler = RGBScaler()

    init(input: String, network: Bool, interrupt: Interrupt) throws {
        self.interrupt = interrupt
        guard let packet = av_packet_alloc(), let frame = av_frame_alloc() else {
            fatalError("FFmpeg cannot allocate a packet or frame: out of memory")
        }
        self.packet = packet
        self.frame = frame
        try open(input: input, network: network)
    }

    deinit {
        // Closing can block too (an RTSP TEARDOWN, say); give it one more deadline.
        interrupt.arm()
        avcodec_free_context(&decoder)
        avformat_close_input(&format)
        pipe = nil
        var packet: UnsafeMutablePointer<AVPacket>? = packet
        av_packet_free(&packet)
        var frame: UnsafeMutablePointer<AVFrame>? = frame
        av_frame_free(&frame)
    }

    private func open(input: String, network: Bool) throws {
        if !network { pipe = try PipeReader.open(input, interrupt: interrupt) }
        guard let allocated = avformat_alloc_context() else { fatalError("FFmpeg cannot allocate a format context: out of memory") }
        allocated.pointee.interrupt_callback = AVIOInterruptCB(
            callback: { opaque in
                guard let opaque else { return 0 }
                return Unmanaged<Interrupt>.fromOpaque(opaque).takeUnretainedValue().shouldStop() ? 1 : 0
            },
            opaque: Unmanaged.passUnretained(interrupt).toOpaque())

        var options: OpaquePointer?
        defer { av_dict_free(&options) }
        if network {
            // Protocol-level timeouts (microseconds) make sockets give up on their own, besides the interrupt callback.
            let micros = String(interrupt.timeoutMicros)
            av_dict_set(&options, "rw_timeout", micros, 0)
            // rtmp reads "timeout" as a listen timeout in seconds, so only set it where it means socket I/O.
            let scheme = input.prefix { $0 != ":" }.lowercased()
            if ["rtsp", "rtsps", "http", "https", "tcp", "udp", "srt"].contains(scheme) {
                // Some protocols (tcp) take it as a C int and refuse the open beyond it (about 35 minutes, inside the
                // io_timeout range): capped there, with the interrupt callback still keeping the whole timeout.
                av_dict_set(&options, "timeout", String(min(interrupt.timeoutMicros, UInt64(Int32.max))), 0)
            }
        }

        if let pipe {
            allocated.pointee.pb = pipe.avio
            allocated.pointee.flags |= AVFMT_FLAG_CUSTOM_IO
        }
        format = allocated
        interrupt.arm()
        var status = avformat_open_input(&format, input, nil, &options)  // on failure frees the context and nils `format`
        guard status >= 0, let format else {
            // For network inputs the same code also covers protocol failures, so keep libav's wording there.
            if status == sl_averror_invaliddata() && !network {
                throw CaptureError(input: input, reason: "not a recognised media file (\(averrorText(status)))")
            }
            // libav reports a host that does not resolve as a bare I/O error; say what it is.
            if network, let unresolved = unresolvableHost(input) {
                throw CaptureError(input: input, reason: "opening failed: \(unresolved)")
            }
            throw interrupt.error(status, doing: "opening", input: input)
        }

        interrupt.arm()
        status = avformat_find_stream_info(format, nil)
        if status < 0 { throw interrupt.error(status, doing: "reading stream info", input: input) }

        var codec: UnsafePointer<AVCodec>?
        status = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0)
        if status == sl_averror_stream_not_found() {
            throw CaptureError(input: input, reason: "no video stream")
        }
        if status == sl_averror_decoder_not_found() {
            throw CaptureError(input: input, reason: "no decoder for video codec '\(Self.firstVideoCodecName(format))'")
        }
        guard status >= 0, let codec, let stream = format.pointee.streams[Int(status)] else {
            throw CaptureError(input: input, reason: "no usable video stream: \(averrorText(status))")
        }
        streamIndex = status
        timeBase = av_q2d(stream.pointee.time_base)
        frameRate = [stream.pointee.avg_frame_rate, stream.pointee.r_frame_rate]
            .first { $0.num > 0 && $0.den > 0 }
            .map(av_q2d)

        guard let decoder = avcodec_alloc_context3(codec) else { fatalError("FFmpeg cannot allocate a decoder: out of memory") }
        self.decoder = decoder
        status = avcodec_parameters_to_context(decoder, stream.pointee.codecpar)
        if status < 0 { throw CaptureError(input: input, reason: "bad codec parameters: \(averrorText(status))") }
        decoder.pointee.pkt_timebase = stream.pointee.time_base
        // One thread per decoder: the cores belong to the detector workers.
        decoder.pointee.thread_count = 1
        status = avcodec_open2(decoder, codec, nil)
        if status < 0 {
            throw CaptureError(input: input, reason: "cannot open \(String(cString: codec.pointee.name)) decoder: \(averrorText(status))")
        }
    }

    /// Converts the current decoded frame into a pooled RGB24 buffer at its own size, with the colour matrix
    /// and range the frame declares, as the ffmpeg CLI's scale filter does.
    func convert(input: String, pool: PixelBufferPool) throws -> PixelBuffer {
        try scaler.convert(frame: frame, pool: pool, input: input)
    }

    private static func firstVideoCodecName(_ format: UnsafeMutablePointer<AVFormatContext>) -> String {
        for index in 0..<Int(format.pointee.nb_streams) {
            if let parameters = format.pointee.streams[index]?.pointee.codecpar,
               parameters.pointee.codec_type == AVMEDIA_TYPE_VIDEO {
                return String(cString: avcodec_get_name(parameters.pointee.codec_id))
            }
        }
        return "unknown"
    }
}

private func averrorText(_ status: Int32) -> String {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buffer in
        guard av_strerror(status, buffer.baseAddress, buffer.count) == 0 else { return "error \(status)" }
        return String(cString: buffer.baseAddress!)
    }
}

/// "cannot resolve host ..." when the URL's host does not resolve, nil when it does (or the URL has none).
private func unresolvableHost(_ input: String) -> String? {
    guard let host = URLComponents(string: input)?.host, !host.isEmpty else { return nil }
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(host, nil, &hints, &result)
    if let result { freeaddrinfo(result) }
    guard status != 0 else { return nil }
    return "cannot resolve host '\(host)' (\(String(cString: gai_strerror(status))))"
}
