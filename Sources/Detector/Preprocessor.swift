import Capture

/// The graph's own Preprocessor, reproduced: bilinear resize of the RGB frame to the network input size
/// with TensorFlow's legacy semantics (align_corners = false, half_pixel_centers = false, in float32),
/// then `x * scale + offset`. Another resize filter moves scores by 0.05-0.1, so this one is exact.
struct Preprocessor {
    private struct Tap {
        var lower: Int32, upper: Int32, lerp: Float
    }

    let outputHeight: Int, outputWidth: Int
    let scale: Float, offset: Float
    private var sourceSize = (width: 0, height: 0)
    private var rows: [Tap] = []
    private var columns: [Tap] = []
    /// One output row of resized values before normalisation, reused.
    private var top: [Float]
    private var bottom: [Float]

    init(outputHeight: Int, outputWidth: Int, scale: Float, offset: Float) {
        self.outputHeight = outputHeight
        self.outputWidth = outputWidth
        self.scale = scale
        self.offset = offset
        top = [Float](repeating: 0, count: outputWidth * 3)
        bottom = top
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
    mutating func run(_ pixels: PixelBuffer, into destination: UnsafeMutablePointer<Float>) {
        if sourceSize != (pixels.width, pixels.height) {
            sourceSize = (pixels.width, pixels.height)
            rows = Self.taps(output: outputHeight, input: pixels.height)
            columns = Self.taps(output: outputWidth, input: pixels.width)
        }
        let base = pixels.bytes.assumingMemoryBound(to: UInt8.self)
        let rowBytes = pixels.rowBytes
        let width = outputWidth, scale = self.scale, offset = self.offset
        columns.withUnsafeBufferPointer { columns in
            top.withUnsafeMutableBufferPointer { top in
                bottom.withUnsafeMutableBufferPointer { bottom in
                    for y in 0..<outputHeight {
                        let tap = rows[y]
                        Self.interpolateRow(base + Int(tap.lower) * rowBytes, columns, into: top)
                        Self.interpolateRow(base + Int(tap.upper) * rowBytes, columns, into: bottom)
                        let out = destination + y * width * 3
                        let yLerp = tap.lerp
                        for i in 0..<(width * 3) {
                            let value = top[i] + (bottom[i] - top[i]) * yLerp
                            out[i] = value * scale + offset
                        }
                    }
                }
            }
        }
    }

    /// One source row resampled horizontally: `left + (right - left) * xLerp` per channel.
    @inline(__always)
    private static func interpolateRow(_ row: UnsafePointer<UInt8>, _ columns: UnsafeBufferPointer<Tap>, into out: UnsafeMutableBufferPointer<Float>) {
        for x in 0..<columns.count {
            let tap = columns[x]
            let left = row + Int(tap.lower) * 3, right = row + Int(tap.upper) * 3
            for c in 0..<3 {
                let l = Float(left[c]), r = Float(right[c])
                out[x * 3 + c] = l + (r - l) * tap.lerp
            }
        }
    }
}
