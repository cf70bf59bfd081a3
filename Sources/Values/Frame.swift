import Foundation

/// Pixels of one decoded frame: packed RGB24 rows at the frame's original size.
///
/// Buffers come from a `PixelBufferPool` and go back to it with `recycle()`, so a running
/// source allocates no pixel memory per frame.
public final class PixelBuffer: @unchecked Sendable {
    public let width: Int
    public let height: Int
    /// Bytes from one row to the next (>= width * 3; padded for SIMD converters).
    public let rowBytes: Int
    public let bytes: UnsafeMutableRawPointer
    /// Weak: the pool keeps idle buffers, so a strong reference back would leak both.
    private weak var pool: PixelBufferPool?

    init(width: Int, height: Int, pool: PixelBufferPool?) {
        self.width = width
        self.height = height
        rowBytes = (width * 3 + 63) & ~63
        // Extra tail room: swscale's SIMD writers may touch a few bytes past the last row.
        bytes = UnsafeMutableRawPointer.allocate(byteCount: rowBytes * height + 64, alignment: 64)
        self.pool = pool
    }

    /// A buffer outside any pool, for tests and one-off images.
    public convenience init(width: Int, height: Int) {
        self.init(width: width, height: height, pool: nil)
    }

    deinit { bytes.deallocate() }

    /// Hands the buffer back to its pool; the caller must not touch it afterwards.
    public func recycle() { pool?.giveBack(self) }
}

/// A small free list of same-sized pixel buffers, shared by one source and the workers that release its frames.
public final class PixelBufferPool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [PixelBuffer] = []
    private let keep: Int

    /// `keep` bounds how many idle buffers are retained; more may be alive while frames are in flight.
    public init(keep: Int = 16) { self.keep = keep }

    public func take(width: Int, height: Int) -> PixelBuffer {
        lock.lock()
        defer { lock.unlock() }
        while let buffer = free.popLast() {
            if buffer.width == width && buffer.height == height { return buffer }
        }
        return PixelBuffer(width: width, height: height, pool: self)
    }

    fileprivate func giveBack(_ buffer: PixelBuffer) {
        lock.lock()
        defer { lock.unlock() }
        if free.count < keep { free.append(buffer) }
    }
}

/// One decoded frame of one source, ready for the detector's preprocessing.
public struct Frame: Sendable {
    /// The source as the user named it (input path, URL or configured name).
    public let sourceID: String
    /// 0-based index of this frame among the frames the source produced.
    public let sequence: Int
    /// Presentation time in seconds, when the container gives one.
    public let pts: Double?
    /// Wall-clock time the frame was captured (driver timestamp for cameras, decode time otherwise).
    public let captureTime: Date
    /// Monotonic capture instant, for latency measurements.
    public let captureInstant: ContinuousClock.Instant
    public let pixels: PixelBuffer
    /// The file the frame came from, when the source is several files (a directory or an image sequence).
    public var file: String?

    public var width: Int { pixels.width }
    public var height: Int { pixels.height }

    public init(sourceID: String, sequence: Int, pts: Double?, captureTime: Date,
                captureInstant: ContinuousClock.Instant, pixels: PixelBuffer) {
        self.sourceID = sourceID
        self.sequence = sequence
        self.pts = pts
        self.captureTime = captureTime
        self.captureInstant = captureInstant
        self.pixels = pixels
    }
}
