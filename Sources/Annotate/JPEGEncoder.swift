import CFFmpeg
import Values

/// Why a frame could not be encoded.
public struct JPEGError: Error, CustomStringConvertible {
    public let description: String
}

/// Encodes RGB frames as baseline JPEG (4:2:0, full range) with libavcodec's MJPEG encoder. The codec context,
/// its frame and packet, and the RGB-to-YUV converter are made once per frame size and reused, so an encode
/// allocates nothing but the returned bytes. Not thread-safe: one encoder per thread or behind one lock.
public final class JPEGEncoder {
    /// libavcodec's quantizer scale: 2 is the finest, 31 the coarsest.
    public let qscale: Int32
    private var context: UnsafeMutablePointer<AVCodecContext>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var scaler: OpaquePointer?
    private var size: (width: Int, height: Int)?
    private var pts: Int64 = 0

    public init(qscale: Int32 = 4) { self.qscale = max(2, min(31, qscale)) }

    deinit { release() }

    private func release() {
        avcodec_free_context(&context)
        av_frame_free(&frame)
        av_packet_free(&packet)
        sws_freeContext(scaler)
        scaler = nil
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
        scaler = sws_getContext(Int32(width), Int32(height), AV_PIX_FMT_RGB24, Int32(width), Int32(height), AV_PIX_FMT_YUVJ420P,
                                SWS_BILINEAR, nil, nil, nil)
        guard scaler != nil else { throw JPEGError(description: "cannot convert RGB24 to YUVJ420P at \(width)x\(height)") }
        size = (width, height)
    }

    /// The frame as a JPEG file's bytes.
    public func encode(_ pixels: PixelBuffer) throws -> [UInt8] {
        try prepare(width: pixels.width, height: pixels.height)
        guard let context, let frame, let packet else { throw JPEGError(description: "the JPEG encoder is not ready") }
        var status = av_frame_make_writable(frame)
        guard status >= 0 else { throw JPEGError(description: "cannot reuse the encoder's frame: \(Self.message(status))") }
        var source: UnsafePointer<UInt8>? = UnsafePointer(pixels.bytes.assumingMemoryBound(to: UInt8.self))
        var sourceStride = Int32(pixels.rowBytes)
        let rows = withUnsafeMutablePointer(to: &frame.pointee.data) { planes in
            withUnsafeMutablePointer(to: &frame.pointee.linesize) { strides in
                sws_scale(scaler, &source, &sourceStride, 0, Int32(pixels.height),
                          UnsafeMutableRawPointer(planes).assumingMemoryBound(to: UnsafeMutablePointer<UInt8>?.self),
                          UnsafeMutableRawPointer(strides).assumingMemoryBound(to: Int32.self))
            }
        }
        guard rows == pixels.height else { throw JPEGError(description: "converting a \(pixels.width)x\(pixels.height) frame to YUV failed") }
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

    private static func message(_ status: Int32) -> String {
        var text = [CChar](repeating: 0, count: 128)
        av_strerror(status, &text, text.count)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
