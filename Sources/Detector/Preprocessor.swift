import Values

/// The graph's own Preprocessor, reproduced: bilinear resize of the RGB frame to the network input size
/// with TensorFlow's legacy semantics (align_corners = false, half_pixel_centers = false, in float32),
/// then `x * scale + offset`. Another resize filter moves scores by 0.05-0.1, so this one is exact:
/// every value goes through the same float32 operations, in the same order, as TensorFlow's kernel.
final class Preprocessor {
    private struct Tap {
        var lower: Int32, upper: Int32, lerp: Float
    }

    let outputHeight: Int, outputWidth: Int
    let scale: Float, offset: Float
    private var sourceSize = (width: 0, height: 0)
    private var rows: [Tap] = []
    private var columns: [Tap] = []
    /// Horizontally resampled source rows (RGB floats, one spare lane at the end for 4-wide stores).
    /// Consecutive output rows mostly share their source rows, so each is kept until no longer needed.
    private var top: UnsafeMutablePointer<Float>
    private var bottom: UnsafeMutablePointer<Float>

    init(outputHeight: Int, outputWidth: Int, scale: Float, offset: Float) {
        self.outputHeight = outputHeight
        self.outputWidth = outputWidth
        self.scale = scale
        self.offset = offset
        top = .allocate(capacity: outputWidth * 3 + 4)
        bottom = .allocate(capacity: outputWidth * 3 + 4)
    }

    deinit {
        top.deallocate()
        bottom.deallocate()
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
            columns = Self.taps(output: outputWidth, input: pixels.width)
        }
        var topRow = -1, bottomRow = -1
        let base = pixels.bytes.assumingMemoryBound(to: UInt8.self)
        let rowBytes = pixels.rowBytes
        let count = outputWidth * 3, scale = self.scale, offset = self.offset
        columns.withUnsafeBufferPointer { columns in
            for y in 0..<outputHeight {
                let tap = rows[y]
                let lower = Int(tap.lower), upper = Int(tap.upper)
                // Moving down, the previous bottom row is often this one's top: swap instead of recomputing.
                if lower != topRow && lower == bottomRow {
                    swap(&top, &bottom)
                    swap(&topRow, &bottomRow)
                }
                if lower != topRow {
                    Self.resample(base + lower * rowBytes, columns, into: top)
                    topRow = lower
                }
                if upper != bottomRow {
                    Self.resample(base + upper * rowBytes, columns, into: bottom)
                    bottomRow = upper
                }
                let out = destination + y * count
                let yLerp = tap.lerp
                for i in 0..<count {
                    let value = top[i] + (bottom[i] - top[i]) * yLerp
                    out[i] = value * scale + offset
                }
            }
        }
    }

    /// One source row resampled horizontally: `left + (right - left) * xLerp` per channel, a pixel's three
    /// channels at once. Loads read one byte past a pixel and stores write one float past it (pixel rows
    /// and `out` have the room); the spare store lane is overwritten by the next pixel.
    @inline(__always)
    private static func resample(_ row: UnsafePointer<UInt8>, _ columns: UnsafeBufferPointer<Tap>, into out: UnsafeMutablePointer<Float>) {
        let source = UnsafeRawPointer(row)
        let target = UnsafeMutableRawPointer(out)
        for x in 0..<columns.count {
            let tap = columns[x]
            let left = SIMD4<Float>(source.loadUnaligned(fromByteOffset: Int(tap.lower) * 3, as: SIMD4<UInt8>.self))
            let right = SIMD4<Float>(source.loadUnaligned(fromByteOffset: Int(tap.upper) * 3, as: SIMD4<UInt8>.self))
            target.storeBytes(of: left + (right - left) * tap.lerp, toByteOffset: x * 12, as: SIMD4<Float>.self)
        }
    }
}
