import Values

/// The graph's own Preprocessor, reproduced: bilinear resize of the RGB frame to the network input size
/// with TensorFlow's legacy semantics (align_corners = false, half_pixel_centers = false, in float32),
/// then `x * scale + offset`. Another resize filter moves scores by 0.05-0.1, so this one is exact:
/// every value goes through the same float32 operations, in the same order, as TensorFlow's kernel.
final class Preprocessor {
    private struct Tap {
        var lower: Int32, upper: Int32, lerp: Float
    }

    /// One output column's source pixels (byte offsets in a row) and its weight, ready for 4-lane math.
    private struct Column {
        var left: Int, right: Int
        var lerp: SIMD4<Float>
    }

    let outputHeight: Int, outputWidth: Int
    let scale: Float, offset: Float
    private var sourceSize = (width: 0, height: 0)
    private var rows: [Tap] = []
    private var columns: [Column] = []
    /// Horizontally resampled source rows (RGB floats, padded to a whole number of 4-lane vectors plus one spare
    /// lane for the 4-wide pixel stores). Consecutive output rows share source rows now and then, so each is kept
    /// until no longer needed.
    private let rowBuffers: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)

    init(outputHeight: Int, outputWidth: Int, scale: Float, offset: Float) {
        self.outputHeight = outputHeight
        self.outputWidth = outputWidth
        self.scale = scale
        self.offset = offset
        let capacity = (outputWidth * 3 + 3) / 4 * 4 + 4
        rowBuffers = (.allocate(capacity: capacity), .allocate(capacity: capacity))
        rowBuffers.0.initialize(repeating: 0, count: capacity)
        rowBuffers.1.initialize(repeating: 0, count: capacity)
    }

    deinit {
        rowBuffers.0.deallocate()
        rowBuffers.1.deallocate()
    }

    /// TensorFlow's `compute_interpolation_weights` with the legacy scaler.
    private static func taps(output: Int, input: Int) -> [Tap] {
        let scale = Float(input) / Float(output)
        return (0..<output).map { i in
            let position = Float(i) * scale
            let lowerF = position.rounded(.down)
            return Tap(lower: Int32(max(Int(lowerF), 0)), upper: Int32(min(Int(position.rounded(.up)), input - 1)), lerp: position - lowerF)
        }
    }

    /// Writes the network input for `pixels` (packed RGB24 rows) into `destination` (NHWC f32).
    func run(_ pixels: PixelBuffer, into destination: UnsafeMutablePointer<Float>) {
        if sourceSize != (pixels.width, pixels.height) {
            sourceSize = (pixels.width, pixels.height)
            rows = Self.taps(output: outputHeight, input: pixels.height)
            columns = Self.taps(output: outputWidth, input: pixels.width).map {
                Column(left: Int($0.lower) * 3, right: Int($0.upper) * 3, lerp: SIMD4(repeating: $0.lerp))
            }
        }
        // Locals, not stored properties, in the loops: the compiler then knows no store into `destination` changes them.
        var (top, bottom) = rowBuffers
        var topRow = -1, bottomRow = -1
        let base = UnsafeRawPointer(pixels.bytes)
        let rowBytes = pixels.rowBytes
        let count = outputWidth * 3
        let scale = SIMD4<Float>(repeating: self.scale), offset = SIMD4<Float>(repeating: self.offset)
        let out = UnsafeMutableRawPointer(destination)
        columns.withUnsafeBufferPointer { columns in
            rows.withUnsafeBufferPointer { rows in
                for (y, tap) in rows.enumerated() {
                    let lower = Int(tap.lower), upper = Int(tap.upper)
                    // Moving down, the previous bottom row is sometimes this one's top: swap instead of recomputing.
                    if lower != topRow && lower == bottomRow {
                        swap(&top, &bottom)
                        swap(&topRow, &bottomRow)
                    }
                    if lower != topRow {
                        Self.resample(base + lower &* rowBytes, columns, into: top)
                        topRow = lower
                    }
                    if upper != bottomRow {
                        Self.resample(base + upper &* rowBytes, columns, into: bottom)
                        bottomRow = upper
                    }
                    // `top + (bottom - top) * yLerp`, then `* scale + offset`, four values at a time.
                    let yLerp = SIMD4<Float>(repeating: tap.lerp)
                    let rowOut = out + y &* count &* 4
                    var i = 0
                    while i &+ 4 <= count {
                        let upperValues = UnsafeRawPointer(top).loadUnaligned(fromByteOffset: i &* 4, as: SIMD4<Float>.self)
                        let lowerValues = UnsafeRawPointer(bottom).loadUnaligned(fromByteOffset: i &* 4, as: SIMD4<Float>.self)
                        let value = upperValues + (lowerValues - upperValues) * yLerp
                        rowOut.storeBytes(of: value * scale + offset, toByteOffset: i &* 4, as: SIMD4<Float>.self)
                        i &+= 4
                    }
                    while i < count {
                        let value = top[i] + (bottom[i] - top[i]) * tap.lerp
                        rowOut.storeBytes(of: value * self.scale + self.offset, toByteOffset: i &* 4, as: Float.self)
                        i &+= 1
                    }
                }
            }
        }
    }

    /// One source row resampled horizontally: `left + (right - left) * xLerp` per channel, a pixel's three
    /// channels at once. Loads read one byte past a pixel and stores write one float past it (pixel rows
    /// and `out` have the room); the spare store lane is overwritten by the next pixel.
    @inline(__always)
    private static func resample(_ row: UnsafeRawPointer, _ columns: UnsafeBufferPointer<Column>, into out: UnsafeMutablePointer<Float>) {
        let target = UnsafeMutableRawPointer(out)
        for (x, column) in columns.enumerated() {
            let left = SIMD4<Float>(row.loadUnaligned(fromByteOffset: column.left, as: SIMD4<UInt8>.self))
            let right = SIMD4<Float>(row.loadUnaligned(fromByteOffset: column.right, as: SIMD4<UInt8>.self))
            target.storeBytes(of: left + (right - left) * column.lerp, toByteOffset: x &* 12, as: SIMD4<Float>.self)
        }
    }
}
