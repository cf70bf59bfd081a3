import CFFmpeg
import Foundation
import Values

/// How a camera's YCbCr values map to RGB, from the colorimetry fields of the format the driver accepted.
struct V4L2Colorimetry: Hashable, Sendable {
    /// BT.709 matrix instead of BT.601 (the usual webcam default).
    var bt709 = false
    /// 0-255 luma instead of 16-235.
    var fullRange = false
}

/// Turns the bytes of one V4L2 buffer into a pooled packed RGB24 `PixelBuffer`, converting as the ffmpeg CLI
/// does with `-pix_fmt rgb24 -sws_flags bilinear` (the command the detector's fixtures come from).
/// Takes plain memory rather than a device, so tests can feed it frames made by the CLI.
final class V4L2FrameConverter {
    private enum Kind {
        case yuyv(V4L2Colorimetry)
        case motionJPEG(JPEGDecoder)
        case rgb24
    }

    private let input: String
    private let kind: Kind
    private let width: Int
    private let height: Int
    private let bytesPerLine: Int
    private let scaler = RGBScaler()

    /// - Parameters:
    ///   - input: the device, for error messages.
    ///   - bytesPerLine: the driver's row stride for uncompressed formats (0 means tightly packed).
    init(input: String, pixelFormat: V4L2PixelFormat, width: Int, height: Int, bytesPerLine: Int = 0,
         colorimetry: V4L2Colorimetry = V4L2Colorimetry()) throws {
        self.input = input
        self.width = width
        self.height = height
        switch pixelFormat {
        case .yuyv:
            kind = .yuyv(colorimetry)
            self.bytesPerLine = max(bytesPerLine, width * 2)
        case .rgb24:
            kind = .rgb24
            self.bytesPerLine = max(bytesPerLine, width * 3)
        case let format where format.isMotionJPEG:
            kind = .motionJPEG(try JPEGDecoder(input: input))
            self.bytesPerLine = 0
        default:
            throw CaptureError(input: input, reason: "cannot convert pixel format \(pixelFormat) to RGB24")
        }
    }

    /// The frame in `bytes` as RGB24, or nil when the bytes do not hold a whole frame (a short or corrupt
    /// buffer, which cameras produce now and then, so the caller skips it). Throws when conversion itself fails.
    func convert(_ bytes: UnsafeRawBufferPointer, pool: PixelBufferPool) throws -> PixelBuffer? {
        switch kind {
        case .yuyv(let colorimetry):
            guard height > 0, let base = bytes.baseAddress,
                  bytes.count >= bytesPerLine * (height - 1) + width * 2 else { return nil }
            var planes: (UnsafePointer<UInt8>?, UnsafePointer<UInt8>?, UnsafePointer<UInt8>?, UnsafePointer<UInt8>?)
                = (base.assumingMemoryBound(to: UInt8.self), nil, nil, nil)
            var strides: (Int32, Int32, Int32, Int32) = (Int32(bytesPerLine), 0, 0, 0)
            let key = RGBScaler.Key(width: Int32(width), height: Int32(height), format: AV_PIX_FMT_YUYV422.rawValue,
                                    fullRange: colorimetry.fullRange,
                                    colorspace: Int32(colorimetry.bt709 ? AVCOL_SPC_BT709.rawValue : AVCOL_SPC_UNSPECIFIED.rawValue))
            return try withUnsafePointer(to: &planes) { planes in
                try withUnsafePointer(to: &strides) { strides in
                    try scaler.convert(planes: UnsafeRawPointer(planes), strides: UnsafeRawPointer(strides), key: key,
                                       pool: pool, input: input)
                }
            }

        case .motionJPEG(let decoder):
            guard let frame = decoder.decode(bytes) else { return nil }
            defer { av_frame_unref(frame) }
            return try scaler.convert(frame: frame, pool: pool, input: input)

        case .rgb24:
            let rowLength = width * 3
            guard height > 0, let base = bytes.baseAddress,
                  bytes.count >= bytesPerLine * (height - 1) + rowLength else { return nil }
            let pixels = pool.take(width: width, height: height)
            for row in 0..<height {
                pixels.bytes.advanced(by: row * pixels.rowBytes).copyMemory(from: base + row * bytesPerLine, byteCount: rowLength)
            }
            return pixels
        }
    }
}

/// libavcodec's MJPEG decoder, fed one camera buffer at a time.
private final class JPEGDecoder {
    private var context: UnsafeMutablePointer<AVCodecContext>?
    // Reused for every buffer so decoding allocates nothing per frame on our side.
    private let packet: UnsafeMutablePointer<AVPacket>
    private let frame: UnsafeMutablePointer<AVFrame>

    init(input: String) throws {
        guard let packet = av_packet_alloc(), let frame = av_frame_alloc() else {
            fatalError("FFmpeg cannot allocate a packet or frame: out of memory")
        }
        self.packet = packet
        self.frame = frame
        guard let codec = avcodec_find_decoder(AV_CODEC_ID_MJPEG) else {
            throw CaptureError(input: input, reason: "this FFmpeg build has no MJPEG decoder")
        }
        guard let context = avcodec_alloc_context3(codec) else { fatalError("FFmpeg cannot allocate a decoder: out of memory") }
        self.context = context
        // One thread: the cores belong to the detector workers.
        context.pointee.thread_count = 1
        let status = avcodec_open2(context, codec, nil)
        if status < 0 { throw CaptureError(input: input, reason: "cannot open the MJPEG decoder (error \(status))") }
    }

    deinit {
        avcodec_free_context(&context)
        var packet: UnsafeMutablePointer<AVPacket>? = packet
        av_packet_free(&packet)
        var frame: UnsafeMutablePointer<AVFrame>? = frame
        av_frame_free(&frame)
    }

    /// The decoded picture (to be unreffed by the caller), or nil when the buffer is not a decodable JPEG.
    func decode(_ bytes: UnsafeRawBufferPointer) -> UnsafeMutablePointer<AVFrame>? {
        guard let base = bytes.baseAddress, !bytes.isEmpty, bytes.count <= Int(Int32.max) else { return nil }
        // Not reference-counted, so libavcodec copies (and pads) the data before the camera reuses the buffer.
        packet.pointee.data = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: UInt8.self))
        packet.pointee.size = Int32(bytes.count)
        defer {
            packet.pointee.data = nil
            packet.pointee.size = 0
        }
        guard avcodec_send_packet(context, packet) >= 0 else { return nil }
        // MJPEG frames are intra-only with no reordering, so each packet yields its picture at once.
        guard avcodec_receive_frame(context, frame) >= 0 else { return nil }
        return frame
    }
}

