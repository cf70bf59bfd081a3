import CFFmpeg
import Values

/// A swscale context to packed RGB24 at the same size, rebuilt only when the source changes.
final class RGBScaler {
    struct Key: Equatable {
        var width, height, format: Int32
        /// nil leaves swscale's own choice (full range for the yuvj formats, limited otherwise).
        var fullRange: Bool?
        /// An AVColorSpace, whose numbering swscale's coefficient tables share.
        var colorspace: Int32
    }

    private var context: OpaquePointer?
    private var key: Key?

    deinit { sws_freeContext(context) }

    /// A decoded frame, with the colour matrix and range it declares.
    func convert(frame: UnsafeMutablePointer<AVFrame>, pool: PixelBufferPool, input: String) throws -> PixelBuffer {
        let range = frame.pointee.color_range
        let key = Key(width: frame.pointee.width, height: frame.pointee.height, format: frame.pointee.format,
                      fullRange: range == AVCOL_RANGE_UNSPECIFIED ? nil : range == AVCOL_RANGE_JPEG,
                      colorspace: Int32(frame.pointee.colorspace.rawValue))
        return try withUnsafePointer(to: &frame.pointee.data) { planes in
            try withUnsafePointer(to: &frame.pointee.linesize) { strides in
                try convert(planes: UnsafeRawPointer(planes), strides: UnsafeRawPointer(strides), key: key, pool: pool, input: input)
            }
        }
    }

    /// `planes` and `strides` point at swscale's source arrays (four or more plane pointers and line sizes).
    func convert(planes: UnsafeRawPointer, strides: UnsafeRawPointer, key: Key, pool: PixelBufferPool,
                 input: String) throws -> PixelBuffer {
        if key != self.key { try configure(key, input: input) }
        let pixels = pool.take(width: Int(key.width), height: Int(key.height))
        var destination: (UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt8>?,
                          UnsafeMutablePointer<UInt8>?) = (pixels.bytes.assumingMemoryBound(to: UInt8.self), nil, nil, nil)
        var destinationStrides: (Int32, Int32, Int32, Int32) = (Int32(pixels.rowBytes), 0, 0, 0)
        let rows = withUnsafePointer(to: &destination) { destination in
            withUnsafePointer(to: &destinationStrides) { destinationStrides in
                sws_scale(context,
                          planes.assumingMemoryBound(to: UnsafePointer<UInt8>?.self),
                          strides.assumingMemoryBound(to: Int32.self),
                          0, key.height,
                          UnsafeRawPointer(destination).assumingMemoryBound(to: UnsafeMutablePointer<UInt8>?.self),
                          UnsafeRawPointer(destinationStrides).assumingMemoryBound(to: Int32.self))
            }
        }
        guard rows == key.height else {
            pixels.recycle()
            throw CaptureError(input: input, reason: "converting a \(key.width)x\(key.height) frame to RGB24 failed")
        }
        return pixels
    }

    private func configure(_ key: Key, input: String) throws {
        context = sws_getCachedContext(context, key.width, key.height, AVPixelFormat(key.format),
                                       key.width, key.height, AV_PIX_FMT_RGB24, SWS_BILINEAR, nil, nil, nil)
        guard let context else {
            self.key = nil
            let name = av_get_pix_fmt_name(AVPixelFormat(key.format)).map { String(cString: $0) } ?? "\(key.format)"
            throw CaptureError(input: input, reason: "cannot convert pixel format \(name) to RGB24")
        }
        // As the CLI's scale filter does: the matrix and range the source declares rather than swscale's defaults.
        var inverseTable: UnsafeMutablePointer<Int32>?, table: UnsafeMutablePointer<Int32>?
        var sourceRange: Int32 = 0, destinationRange: Int32 = 0, brightness: Int32 = 0, contrast: Int32 = 0, saturation: Int32 = 0
        sws_getColorspaceDetails(context, &inverseTable, &sourceRange, &table, &destinationRange,
                                 &brightness, &contrast, &saturation)
        if let fullRange = key.fullRange { sourceRange = fullRange ? 1 : 0 }
        let coefficients = sws_getCoefficients(key.colorspace)
        sws_setColorspaceDetails(context, coefficients, sourceRange, coefficients, destinationRange,
                                 brightness, contrast, saturation)
        self.key = key
    }
}
