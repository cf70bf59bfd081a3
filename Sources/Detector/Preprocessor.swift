import Values

/// The graph's own Preprocessor, reproduced: bilinear resize of the RGB frame to the network input size
/// with TensorFlow's legacy semantics (align_corners = false, half_pixel_centers = false, in float32),
/// then `x * scale + offset`. Another resize filter moves scores by 0.05-0.1, so this one is exact:
/// every value goes through the same float32 operations, in the same order, as TensorFlow's kernel.
/// The result is written straight in the network's input type (`InputEncoding`), so no conversion pass follows.
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
    let encoding: InputEncoding
    private var sourceSize = (width: 0, height: 0)
    private var rows: [Tap] = []
    private var columns: [Column] = []
    /// Horizontally resampled source rows (RGB floats, padded to a whole number of 8-value blocks plus room for the
    /// 4-wide pixel stores' spare lane). Consecutive output rows share source rows now and then, so each is kept
    /// until no longer needed.
    private let rowBuffers: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)

    init(outputHeight: Int, outputWidth: Int, scale: Float, offset: Float, encoding: InputEncoding = .f32) {
        self.outputHeight = outputHeight
        self.outputWidth = outputWidth
        self.scale = scale
        self.offset = offset
        self.encoding = encoding
        let capacity = (outputWidth * 3 + 7) / 8 * 8 + 8
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

    /// Writes the network input for `pixels` (packed RGB24 rows) into `destination` (NHWC, in `encoding`).
    func run(_ pixels: PixelBuffer, into destination: UnsafeMutableRawPointer) {
        switch encoding {
        case .f32: resize(pixels, into: destination, as: F32Elements())
        case .bf16: resize(pixels, into: destination, as: BF16Elements())
        case .s8(let scale):
            // Resized pixels stay within [0, 255], so the input within [offset, 255 x scale + offset]: where that
            // rounds into [-128, 127] by itself (the usual case), the clamp can never act and is left out.
            let ends = (self.offset * scale, (255 * self.scale + self.offset) * scale)
            if min(ends.0, ends.1) > -128.5 && max(ends.0, ends.1) < 127.5 {
                resize(pixels, into: destination, as: S8Elements(scale: scale, clamps: false))
            } else {
                resize(pixels, into: destination, as: S8Elements(scale: scale, clamps: true))
            }
        }
    }

    private func resize<Elements: InputElements>(_ pixels: PixelBuffer, into out: UnsafeMutableRawPointer, as elements: Elements) {
        if sourceSize != (pixels.width, pixels.height) {
            sourceSize = (pixels.width, pixels.height)
            rows = Self.taps(output: outputHeight, input: pixels.height)
            columns = Self.taps(output: outputWidth, input: pixels.width).map {
                Column(left: Int($0.lower) * 3, right: Int($0.upper) * 3, lerp: SIMD4(repeating: $0.lerp))
            }
        }
        // Locals, not stored properties, in the loops: the compiler then knows no store into `out` changes them.
        var (top, bottom) = rowBuffers
        var topRow = -1, bottomRow = -1
        let base = UnsafeRawPointer(pixels.bytes)
        let rowBytes = pixels.rowBytes
        let count = outputWidth * 3
        let scale = SIMD8<Float>(repeating: self.scale), offset = SIMD8<Float>(repeating: self.offset)
        let elementBytes = MemoryLayout<Elements.Stored>.stride
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
                    // `top + (bottom - top) * yLerp`, then `* scale + offset`, eight values at a time (whole
                    // vectors of the 16-bit and 8-bit types).
                    let yLerp = SIMD8<Float>(repeating: tap.lerp)
                    let (upperRow, lowerRow) = (UnsafeRawPointer(top), UnsafeRawPointer(bottom))
                    @inline(__always) func values(at i: Int) -> SIMD8<Float> {
                        let upper = upperRow.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
                        let lower = lowerRow.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
                        return (upper + (lower - upper) * yLerp) * scale + offset
                    }
                    let rowOut = out + y &* count &* elementBytes
                    var i = 0
                    while i <= count &- 8 {
                        rowOut.storeBytes(of: elements.encode(values(at: i)), toByteOffset: i &* elementBytes, as: SIMD8<Elements.Stored>.self)
                        i &+= 8
                    }
                    if i < count {
                        // The row's last 1-7 values: the row buffers have a spare block's room, the output not.
                        let encoded = elements.encode(values(at: i))
                        for lane in 0..<(count - i) {
                            rowOut.storeBytes(of: encoded[lane], toByteOffset: (i + lane) * elementBytes, as: Elements.Stored.self)
                        }
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

/// How the network stores its input (the element type of its first tensor), so the Preprocessor writes it directly
/// instead of a conversion pass after it. Each rounds as oneDNN's f32 reorder into that type does, bit for bit.
enum InputEncoding: Equatable, Sendable {
    case f32
    /// bfloat16, rounded to nearest, ties to even.
    case bf16
    /// saturate(round-to-nearest-even(value x scale)): an int8 network's input, symmetric (zero point 0).
    case s8(scale: Float)
}

/// Eight values of the network input, encoded for storing.
protocol InputElements {
    associatedtype Stored: SIMDScalar
    func encode(_ values: SIMD8<Float>) -> SIMD8<Stored>
}

struct F32Elements: InputElements {
    @inline(__always) func encode(_ values: SIMD8<Float>) -> SIMD8<Float> { values }
}

struct BF16Elements: InputElements {
    /// The top half of the float, plus 0x7FFF and the lowest kept bit: round to nearest, ties to even (inputs are
    /// finite: pixels times the graph's constants).
    @inline(__always) func encode(_ values: SIMD8<Float>) -> SIMD8<UInt16> {
        let bits = unsafeBitCast(values, to: SIMD8<UInt32>.self)
        return SIMD8<UInt16>(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16)
    }
}

struct S8Elements: InputElements {
    let scale: Float
    /// False where no value can leave [-128.5, 127.5] (then rounding alone keeps them in range).
    let clamps: Bool

    /// Clamped to [-128, 127] and moved into [2^23, 2^24), where a float's step is 1: the addition rounds to the
    /// nearest integer, ties to even, and the low byte of its bits is that integer as two's complement.
    @inline(__always) func encode(_ values: SIMD8<Float>) -> SIMD8<Int8> {
        var scaled = values * scale
        if clamps {
            scaled.replace(with: 127, where: scaled .> 127)
            scaled.replace(with: -128, where: scaled .< -128)
        }
        return SIMD8<Int8>(truncatingIfNeeded: unsafeBitCast(scaled + 12_582_912, to: SIMD8<UInt32>.self))
    }
}
