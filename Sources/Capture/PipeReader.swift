import CFFmpeg
import Foundation
import Values

/// Reads a FIFO or pipe for libavformat through a custom AVIOContext. libav's file protocol ignores the
/// interrupt callback, so a stalled writer would block its `read()` forever (and `close()` with it); here
/// the descriptor is non-blocking and every wait is a short `poll` that checks the deadline and the abort flag.
final class PipeReader {
    /// Poll slice: how long an aborted read may take to notice.
    private static let pollMilliseconds: Int32 = 50
    private static let bufferSize = 1 << 16

    private(set) var avio: UnsafeMutablePointer<AVIOContext>?
    private let fd: Int32
    private let interrupt: Interrupt
    /// A writer has been seen (data, or a hang-up). Until then end-of-file only means no writer has opened yet.
    private var sawWriter = false

    /// A reader for `path` if it is a FIFO or socket, else nil (regular files and devices do not stall).
    static func open(_ path: String, interrupt: Interrupt) throws -> PipeReader? {
        let type = FileType(path: path)
        guard type == .fifo || type == .socket else { return nil }
        // O_NONBLOCK also keeps open() itself from waiting for a writer.
        let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw CaptureError(input: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
        return PipeReader(fd: fd, interrupt: interrupt)
    }

    private init(fd: Int32, interrupt: Interrupt) {
        self.fd = fd
        self.interrupt = interrupt
        guard let buffer = av_malloc(Self.bufferSize) else { fatalError("FFmpeg cannot allocate an I/O buffer: out of memory") }
        avio = avio_alloc_context(buffer.assumingMemoryBound(to: UInt8.self), Int32(Self.bufferSize), 0,
                                  Unmanaged.passUnretained(self).toOpaque(), { opaque, buffer, size in
            guard let opaque, let buffer else { return sl_averror_exit() }
            return Unmanaged<PipeReader>.fromOpaque(opaque).takeUnretainedValue().read(into: buffer, size: Int(size))
        }, nil, nil)
        guard avio != nil else { fatalError("FFmpeg cannot allocate an I/O context: out of memory") }
    }

    deinit {
        if let avio {
            var buffer: UnsafeMutablePointer<UInt8>? = avio.pointee.buffer
            av_freep(&buffer)
        }
        avio_context_free(&avio)
        Glibc.close(fd)
    }

    private func read(into buffer: UnsafeMutablePointer<UInt8>, size: Int) -> Int32 {
        while true {
            let n = Glibc.read(fd, buffer, size)
            if n > 0 {
                sawWriter = true
                return Int32(n)
            }
            if n == 0 && sawWriter { return sl_averror_eof() }
            if n < 0 && errno != EAGAIN && errno != EINTR { return -errno }
            if interrupt.shouldStop() { return sl_averror_exit() }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, Self.pollMilliseconds) > 0 && pfd.revents & Int16(POLLIN | POLLHUP) != 0 { sawWriter = true }
        }
    }
}
