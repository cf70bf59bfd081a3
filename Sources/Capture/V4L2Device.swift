import CV4L2
import Foundation
import Values

/// An open V4L2 capture device, used through libv4l2 so formats the camera cannot deliver natively are converted
/// by libv4lconvert. Owns the descriptor and the mmap'ed buffers; deinit stops streaming and releases both.
/// Used from one thread at a time.
final class V4L2Device {
    /// One filled capture buffer, valid until it is handed back with `requeue(_:)`.
    struct Buffer {
        var index: UInt32
        var bytes: UnsafeRawBufferPointer
        var flags: UInt32
        var timestamp: timeval
    }

    let fd: Int32
    private let input: String
    /// Where a symlink such as /dev/v4l/by-id/... points, for messages.
    private let resolved: String
    private var mappings: [UnsafeMutableRawBufferPointer] = []
    private var streaming = false

    private static let captureType = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
    /// Bounds every enumeration loop, against drivers that never report the end.
    private static let enumerationLimit: UInt32 = 256

    init(path: String) throws {
        input = path
        resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        // Non-blocking: frames are awaited with poll(), which close() can interrupt.
        let fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            switch code {
            case ENOENT, ENODEV, ENXIO: throw Self.error(path, resolved, "no such device")
            case EACCES, EPERM:
                let isDevice = FileType(path: path) == .characterDevice
                throw Self.error(path, resolved, isDevice ? "permission denied: add the user to the 'video' group"
                                                          : "permission denied")
            case EISDIR: throw Self.error(path, resolved, "not a video capture device")
            case EBUSY: throw Self.error(path, resolved, "device busy: another program is using the camera")
            default: throw Self.error(path, resolved, "cannot open: \(String(cString: strerror(code)))")
            }
        }
        self.fd = fd
        // Checked before libv4l2 takes the descriptor, so a wrong path fails with our message alone
        // rather than libv4l2's and its plugins' complaints on stderr.
        var capability = v4l2_capability()
        guard control(sl_vidioc_querycap(), &capability) else {
            throw errno == ENODEV ? failure("no such device") : failure("not a video capture device")
        }
        // device_caps describes this node; capabilities covers the whole physical device.
        let capabilities = capability.capabilities & UInt32(V4L2_CAP_DEVICE_CAPS) != 0
            ? capability.device_caps : capability.capabilities
        guard capabilities & UInt32(V4L2_CAP_VIDEO_CAPTURE) != 0 else { throw failure("not a video capture device") }
        guard capabilities & UInt32(V4L2_CAP_STREAMING) != 0 else {
            throw failure("not a video capture device with streaming I/O")
        }
        // From here on v4l2_ioctl and v4l2_mmap route through libv4l2, which converts formats the camera lacks.
        guard v4l2_fd_open(fd, 0) == fd else { throw ioFailure("setting up libv4l2") }
    }

    deinit {
        if streaming {
            var type = Self.captureType
            _ = control(sl_vidioc_streamoff(), &type)
        }
        for mapping in mappings {
            v4l2_munmap(mapping.baseAddress, mapping.count)
        }
        v4l2_close(fd)
    }

    /// The pixel formats, sizes and intervals the device (and libv4lconvert) offer. Stepwise and continuous
    /// ranges become a few candidate values around the request.
    func formats(width: Int?, height: Int?, fps: Double?) -> [V4L2FormatCapability] {
        var formats: [V4L2FormatCapability] = []
        for index in 0..<Self.enumerationLimit {
            var description = v4l2_fmtdesc()
            description.index = index
            description.type = Self.captureType
            guard control(sl_vidioc_enum_fmt(), &description) else { break }
            let pixelFormat = V4L2PixelFormat(rawValue: description.pixelformat)
            var sizes = frameSizes(pixelFormat, width: width, height: height).map {
                V4L2FrameSize(size: $0, intervals: frameIntervals(pixelFormat, $0, fps: fps))
            }
            if sizes.isEmpty {
                // The driver cannot enumerate sizes: ask for the request (or VGA) and let VIDIOC_S_FMT adjust it.
                sizes = [V4L2FrameSize(size: V4L2Size(width: width ?? 640, height: height ?? 480), intervals: [])]
            }
            formats.append(V4L2FormatCapability(pixelFormat: pixelFormat,
                                                emulated: description.flags & UInt32(V4L2_FMT_FLAG_EMULATED) != 0,
                                                sizes: sizes))
        }
        return formats
    }

    private func frameSizes(_ pixelFormat: V4L2PixelFormat, width: Int?, height: Int?) -> [V4L2Size] {
        var sizes: [V4L2Size] = []
        for index in 0..<Self.enumerationLimit {
            var size = v4l2_frmsizeenum()
            size.index = index
            size.pixel_format = pixelFormat.rawValue
            guard control(sl_vidioc_enum_framesizes(), &size) else { break }
            if size.type == V4L2_FRMSIZE_TYPE_DISCRETE.rawValue {
                sizes.append(V4L2Size(width: Int(size.discrete.width), height: Int(size.discrete.height)))
                continue
            }
            let range = size.stepwise
            return V4L2Negotiation.sizes(from: V4L2Size(width: Int(range.min_width), height: Int(range.min_height)),
                                         to: V4L2Size(width: Int(range.max_width), height: Int(range.max_height)),
                                         step: V4L2Size(width: Int(range.step_width), height: Int(range.step_height)),
                                         width: width, height: height)
        }
        return sizes
    }

    private func frameIntervals(_ pixelFormat: V4L2PixelFormat, _ size: V4L2Size, fps: Double?) -> [V4L2Interval] {
        var intervals: [V4L2Interval] = []
        for index in 0..<Self.enumerationLimit {
            var interval = v4l2_frmivalenum()
            interval.index = index
            interval.pixel_format = pixelFormat.rawValue
            interval.width = UInt32(size.width)
            interval.height = UInt32(size.height)
            guard control(sl_vidioc_enum_frameintervals(), &interval) else { break }
            if interval.type == V4L2_FRMIVAL_TYPE_DISCRETE.rawValue {
                let fraction = interval.discrete
                if fraction.numerator > 0 && fraction.denominator > 0 {
                    intervals.append(V4L2Interval(numerator: fraction.numerator, denominator: fraction.denominator))
                }
                continue
            }
            let range = interval.stepwise
            guard range.min.numerator > 0, range.min.denominator > 0, range.max.numerator > 0, range.max.denominator > 0
            else { break }
            return V4L2Negotiation.intervals(from: V4L2Interval(numerator: range.min.numerator, denominator: range.min.denominator),
                                             to: V4L2Interval(numerator: range.max.numerator, denominator: range.max.denominator),
                                             fps: fps)
        }
        return intervals
    }

    /// Sets the mode's pixel format and size; returns what the driver accepted (its size may differ from the request).
    func setFormat(_ mode: V4L2Mode) throws -> v4l2_pix_format {
        var format = v4l2_format()
        format.type = Self.captureType
        format.fmt.pix.width = UInt32(mode.size.width)
        format.fmt.pix.height = UInt32(mode.size.height)
        format.fmt.pix.pixelformat = mode.pixelFormat.rawValue
        // Progressive frames: the converters do not deinterlace.
        format.fmt.pix.field = V4L2_FIELD_NONE.rawValue
        guard control(sl_vidioc_s_fmt(), &format) else {
            throw failure(errno == EBUSY ? "device busy: another program is using the camera"
                                         : "cannot set format \(mode.pixelFormat) \(mode.size): \(String(cString: strerror(errno)))")
        }
        let accepted = V4L2PixelFormat(rawValue: format.fmt.pix.pixelformat)
        guard accepted == mode.pixelFormat else {
            throw failure("asked for \(mode.pixelFormat) but the driver delivers \(accepted)")
        }
        guard format.fmt.pix.width > 0, format.fmt.pix.height > 0 else {
            throw failure("the driver accepted an empty \(format.fmt.pix.width)x\(format.fmt.pix.height) frame size")
        }
        return format.fmt.pix
    }

    /// Requests `interval` (when given) and returns the frame rate the driver then reports, if it reports one.
    func setInterval(_ interval: V4L2Interval?) -> Double? {
        var parameters = v4l2_streamparm()
        parameters.type = Self.captureType
        if let interval {
            parameters.parm.capture.timeperframe = v4l2_fract(numerator: interval.numerator, denominator: interval.denominator)
            if !control(sl_vidioc_s_parm(), &parameters) {
                // Not every driver can set the rate; it then runs at its own.
                _ = control(sl_vidioc_g_parm(), &parameters)
            }
        } else {
            _ = control(sl_vidioc_g_parm(), &parameters)
        }
        let accepted = parameters.parm.capture.timeperframe
        guard accepted.numerator > 0, accepted.denominator > 0 else { return nil }
        return V4L2Interval(numerator: accepted.numerator, denominator: accepted.denominator).framesPerSecond
    }

    /// Allocates, maps and queues `count` buffers, then starts capture.
    func startStreaming(count: UInt32) throws {
        var request = v4l2_requestbuffers()
        request.count = count
        request.type = Self.captureType
        request.memory = V4L2_MEMORY_MMAP.rawValue
        guard control(sl_vidioc_reqbufs(), &request) else { throw ioFailure("requesting capture buffers") }
        // With a single buffer the camera would have nowhere to write while we convert.
        guard request.count >= 2 else { throw failure("the driver granted only \(request.count) capture buffer(s)") }

        for index in 0..<request.count {
            var buffer = v4l2_buffer()
            buffer.index = index
            buffer.type = Self.captureType
            buffer.memory = V4L2_MEMORY_MMAP.rawValue
            guard control(sl_vidioc_querybuf(), &buffer) else { throw ioFailure("querying capture buffer \(index)") }
            let start = v4l2_mmap(nil, Int(buffer.length), PROT_READ | PROT_WRITE, MAP_SHARED, fd, Int64(buffer.m.offset))
            guard let start, start != MAP_FAILED else { throw ioFailure("mapping capture buffer \(index)") }
            mappings.append(UnsafeMutableRawBufferPointer(start: start, count: Int(buffer.length)))
            guard control(sl_vidioc_qbuf(), &buffer) else { throw ioFailure("queueing capture buffer \(index)") }
        }

        var type = Self.captureType
        guard control(sl_vidioc_streamon(), &type) else { throw ioFailure("starting capture") }
        streaming = true
    }

    /// The next filled buffer, or nil when none is ready yet or the driver dropped a damaged one.
    func dequeue() throws -> Buffer? {
        var buffer = v4l2_buffer()
        buffer.type = Self.captureType
        buffer.memory = V4L2_MEMORY_MMAP.rawValue
        guard control(sl_vidioc_dqbuf(), &buffer) else {
            switch errno {
            // EIO: a transient driver error, or libv4lconvert failing to decode a frame; the buffer is requeued.
            case EAGAIN, EIO: return nil
            default: throw ioFailure("reading a frame")
            }
        }
        guard Int(buffer.index) < mappings.count else { throw failure("the driver returned unknown buffer \(buffer.index)") }
        let mapping = mappings[Int(buffer.index)]
        return Buffer(index: buffer.index,
                      bytes: UnsafeRawBufferPointer(start: mapping.baseAddress, count: min(Int(buffer.bytesused), mapping.count)),
                      flags: buffer.flags, timestamp: buffer.timestamp)
    }

    /// Hands a dequeued buffer back to the driver for refilling.
    func requeue(_ dequeued: Buffer) throws {
        var buffer = v4l2_buffer()
        buffer.index = dequeued.index
        buffer.type = Self.captureType
        buffer.memory = V4L2_MEMORY_MMAP.rawValue
        guard control(sl_vidioc_qbuf(), &buffer) else { throw ioFailure("requeueing a capture buffer") }
    }

    /// The error for a device that has gone away.
    func disconnected() -> CaptureError { failure("device disconnected") }

    /// v4l2_ioctl, retried when a signal interrupts it; false on failure with errno set.
    private func control<Argument>(_ request: UInt, _ argument: inout Argument) -> Bool {
        while true {
            if withUnsafeMutablePointer(to: &argument, { sl_v4l2_ioctl(fd, request, $0) }) != -1 { return true }
            if errno != EINTR { return false }
        }
    }

    /// The error for a failed ioctl, read from errno.
    private func ioFailure(_ doing: String) -> CaptureError {
        let code = errno
        switch code {
        case ENODEV, ENXIO: return disconnected()
        case EBUSY: return failure("device busy: another program is using the camera")
        default: return failure("\(doing) failed: \(String(cString: strerror(code)))")
        }
    }

    private func failure(_ reason: String) -> CaptureError { Self.error(input, resolved, reason) }

    private static func error(_ path: String, _ resolved: String, _ reason: String) -> CaptureError {
        CaptureError(input: path, reason: resolved == path ? reason : "\(reason) [\(resolved)]")
    }
}

extension V4L2Colorimetry {
    /// Reads the format's colorimetry, applying V4L2's defaults for fields the driver leaves at 0.
    init(_ format: v4l2_pix_format) {
        let colorspace = format.colorspace
        let encoding = format.ycbcr_enc
        bt709 = encoding == V4L2_YCBCR_ENC_709.rawValue
            || (encoding == V4L2_YCBCR_ENC_DEFAULT.rawValue && colorspace == V4L2_COLORSPACE_REC709.rawValue)
        fullRange = format.quantization == V4L2_QUANTIZATION_FULL_RANGE.rawValue
            || (format.quantization == V4L2_QUANTIZATION_DEFAULT.rawValue && colorspace == V4L2_COLORSPACE_JPEG.rawValue)
    }
}
