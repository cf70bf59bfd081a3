import CFFmpeg
import Values

/// Why a frame could not be encoded.
public struct JPEGError: Error, CustomStringConvertible {
    public let description: String
}

/// Encodes RGB frames as baseline JPEG (4:2:0, full range) with libavcodec's MJPEG encoder. The codec context,
/// its frame and packet are made once per frame size and reused, so an encode allocates nothing but the returned
/// bytes. The RGB-to-YCbCr conversion is our own (`toYCbCr420`): swscale's took half of each encode's time.
/// Not thread-safe: one encoder per thread or behind one lock.
public final class JPEGEncoder {
    /// libavcodec's quantizer scale: 2 is the finest, 31 the coarsest.
    public let qscale: Int32
    private var context: UnsafeMutablePointer<AVCodecContext>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var size: (width: Int, height: Int)?
    private var pts: Int64 = 0

    public init(qscale: Int32 = 4) { self.qscale = max(2, min(31, qscale)) }

    deinit { release() }

    private func release() {
        avcodec_free_context(&context)
        av_frame_free(&frame)
        av_packet_free(&packet)
        size = nil
    }

    private func prepare(width: Int, height: Int) throws {
        if let size, size == (width, height) { return }
        release()
        guard let codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG) else { throw JPEGError(description: "libavcodec has no MJPEG encoder") }
        guard let context = avcodec_alloc_context3(codec), let frame = av_frame_alloc(), let packet = av_packet_alloc() else {
            throw JPEGError(description: "out of memory preparing the JPEG encoder")
        }
        (self.context, self.frame, self.packet) = (context, frame, packet)
        context.pointee.width = Int32(width)
        context.pointee.height = Int32(height)
        context.pointee.pix_fmt = AV_PIX_FMT_YUVJ420P
        context.pointee.color_range = AVCOL_RANGE_JPEG
        context.pointee.time_base = AVRational(num: 1, den: 25)
        context.pointee.thread_count = 1
        context.pointee.flags |= AV_CODEC_FLAG_QSCALE
        context.pointee.global_quality = FF_QP2LAMBDA * qscale
        var status = avcodec_open2(context, codec, nil)
        guard status >= 0 else { throw JPEGError(description: "cannot open the MJPEG encoder at \(width)x\(height): \(Self.message(status))") }
        frame.pointee.format = AV_PIX_FMT_YUVJ420P.rawValue
        frame.pointee.width = Int32(width)
        frame.pointee.height = Int32(height)
        frame.pointee.color_range = AVCOL_RANGE_JPEG
        status = av_frame_get_buffer(frame, 0)
        guard status >= 0 else { throw JPEGError(description: "cannot allocate a \(width)x\(height) frame: \(Self.message(status))") }
        size = (width, height)
    }

    /// The frame as a JPEG file's bytes.
    public func encode(_ pixels: PixelBuffer) throws -> [UInt8] {
        try prepare(width: pixels.width, height: pixels.height)
        guard let context, let frame, let packet else { throw JPEGError(description: "the JPEG encoder is not ready") }
        var status = av_frame_make_writable(frame)
        guard status >= 0 else { throw JPEGError(description: "cannot reuse the encoder's frame: \(Self.message(status))") }
        guard let y = frame.pointee.data.0, let cb = frame.pointee.data.1, let cr = frame.pointee.data.2 else {
            throw JPEGError(description: "the encoder's frame has no planes")
        }
        Self.toYCbCr420(pixels, y: (y, Int(frame.pointee.linesize.0)), cb: (cb, Int(frame.pointee.linesize.1)),
                        cr: (cr, Int(frame.pointee.linesize.2)))
        frame.pointee.pts = pts
        pts += 1
        frame.pointee.quality = context.pointee.global_quality
        status = avcodec_send_frame(context, frame)
        guard status >= 0 else { throw JPEGError(description: "the MJPEG encoder refused the frame: \(Self.message(status))") }
        status = avcodec_receive_packet(context, packet)
        guard status >= 0 else { throw JPEGError(description: "the MJPEG encoder gave no picture: \(Self.message(status))") }
        defer { av_packet_unref(packet) }
        return Array(UnsafeBufferPointer(start: packet.pointee.data, count: Int(packet.pointee.size)))
    }

    /// JPEG's full-range BT.601 YCbCr (JFIF) of packed RGB24 `pixels`, chroma from the mean of each 2x2 block (the
    /// last column and row count twice when the size is odd). Fixed point, rounded to nearest.
    static func toYCbCr420(_ pixels: PixelBuffer, y: (UnsafeMutablePointer<UInt8>, Int), cb: (UnsafeMutablePointer<UInt8>, Int),
                           cr: (UnsafeMutablePointer<UInt8>, Int)) {
        let (width, height, rowBytes) = (pixels.width, pixels.height, pixels.rowBytes)
        let rgb = UnsafePointer(pixels.bytes.assumingMemoryBound(to: UInt8.self))
        for row in 0..<height {
            let source = rgb + row * rowBytes, luma = y.0 + row * y.1
            for x in 0..<width {
                let (r, g, b) = (Int32(source[3 * x]), Int32(source[3 * x + 1]), Int32(source[3 * x + 2]))
                // 0.299, 0.587, 0.114 in 16-bit fixed point: at most 255 << 16, so no clamping.
                luma[x] = UInt8(truncatingIfNeeded: (19595 &* r &+ 38470 &* g &+ 7471 &* b &+ 32768) >> 16)
            }
        }
        for row in 0..<(height + 1) / 2 {
            let top = rgb + 2 * row * rowBytes, bottom = rgb + min(2 * row + 1, height - 1) * rowBytes
            let blue = cb.0 + row * cb.1, red = cr.0 + row * cr.1
            for x in 0..<(width + 1) / 2 {
                let (left, right) = (6 * x, 3 * min(2 * x + 1, width - 1))
                let r = Int32(top[left]) &+ Int32(top[right]) &+ Int32(bottom[left]) &+ Int32(bottom[right])
                let g = Int32(top[left + 1]) &+ Int32(top[right + 1]) &+ Int32(bottom[left + 1]) &+ Int32(bottom[right + 1])
                let b = Int32(top[left + 2]) &+ Int32(top[right + 2]) &+ Int32(bottom[left + 2]) &+ Int32(bottom[right + 2])
                // Sums of four: 16-bit coefficients (-0.168736, -0.331264, 0.5 and 0.5, -0.418688, -0.081312) over 4,
                // plus 128; at least 1, and at most 256 (pure blue or red rounds up), hence the clamp.
                blue[x] = UInt8(truncatingIfNeeded: min(255, (-11059 &* r &- 21709 &* g &+ 32768 &* b &+ (128 << 18) &+ (1 << 17)) >> 18))
                red[x] = UInt8(truncatingIfNeeded: min(255, (32768 &* r &- 27439 &* g &- 5329 &* b &+ (128 << 18) &+ (1 << 17)) >> 18))
            }
        }
    }

    private static func message(_ status: Int32) -> String {
        var text = [CChar](repeating: 0, count: 128)
        av_strerror(status, &text, text.count)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
