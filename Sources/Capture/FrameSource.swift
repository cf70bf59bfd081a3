import Values

/// Anything that yields decoded frames: a file or stream through FFmpeg, or a V4L2 camera.
/// Used from one capture thread; `close()` may come from another to unblock it.
public protocol FrameSource: AnyObject, Sendable {
    /// The input as given (path, URL or device).
    var input: String { get }
    /// Live sources (cameras, network streams) cannot wait for a slow detector: their frames go stale.
    var isLive: Bool { get }
    /// Native frame rate, when known.
    var frameRate: Double? { get }
    /// The next frame that `accept` takes (asked with its capture instant before the frame is converted to
    /// RGB, so frames nobody wants cost no conversion), or nil at the end of the stream. Throws `CaptureError`.
    func next(accepting accept: (ContinuousClock.Instant) -> Bool) throws -> Frame?
    func close()
}

extension FrameSource {
    /// The next frame, or nil at the end of the stream. Throws `CaptureError`.
    public func next() throws -> Frame? { try next(accepting: { _ in true }) }
}

extension FFmpegSource: FrameSource {}
