import Values
import XCTest
@testable import Detector

/// The vectorized Preprocessor against TensorFlow's legacy bilinear resize written out plainly, one value at a
/// time: they must agree bit for bit (FrameParityTests then ties the plain formula to TensorFlow itself).
final class PreprocessorTests: XCTestCase {
    static func randomImage(width: Int, height: Int, seed: UInt64) -> PixelBuffer {
        let pixels = PixelBuffer(width: width, height: height)
        var state = seed
        for i in 0..<(pixels.rowBytes * height) {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            pixels.bytes.storeBytes(of: UInt8(truncatingIfNeeded: state >> 56), toByteOffset: i, as: UInt8.self)
        }
        return pixels
    }

    /// TensorFlow's `resize_bilinear` (legacy scaler, float32) followed by `x * scale + offset`.
    static func plainResize(_ pixels: PixelBuffer, height: Int, width: Int, scale: Float, offset: Float) -> [Float] {
        func taps(_ output: Int, _ input: Int) -> [(lower: Int, upper: Int, lerp: Float)] {
            let ratio = Float(input) / Float(output)
            return (0..<output).map { i in
                let position = Float(i) * ratio
                return (max(Int(position.rounded(.down)), 0), min(Int(position.rounded(.up)), input - 1), position - position.rounded(.down))
            }
        }
        func byte(_ y: Int, _ x: Int, _ c: Int) -> Float {
            Float(pixels.bytes.load(fromByteOffset: y * pixels.rowBytes + x * 3 + c, as: UInt8.self))
        }
        let ys = taps(height, pixels.height), xs = taps(width, pixels.width)
        var result: [Float] = []
        result.reserveCapacity(height * width * 3)
        for y in ys {
            for x in xs {
                for c in 0..<3 {
                    let topLeft = byte(y.lower, x.lower, c), topRight = byte(y.lower, x.upper, c)
                    let bottomLeft = byte(y.upper, x.lower, c), bottomRight = byte(y.upper, x.upper, c)
                    let top = topLeft + (topRight - topLeft) * x.lerp
                    let bottom = bottomLeft + (bottomRight - bottomLeft) * x.lerp
                    let value = top + (bottom - top) * y.lerp
                    result.append(value * scale + offset)
                }
            }
        }
        return result
    }

    func testVectorizedResizeIsThePlainFormulaBitForBit() {
        // Down- and upscaling, odd sizes, exact-integer positions, a single pixel, and a width whose row is not a
        // whole number of 4-lane vectors; the same Preprocessor across size changes, as a source's resolution can change.
        let outputs = [(300, 300), (7, 5)]
        let sources = [(768, 576), (641, 479), (300, 300), (150, 100), (1, 1), (1280, 720), (768, 576)]
        for (outputWidth, outputHeight) in outputs {
            let preprocessor = Preprocessor(outputHeight: outputHeight, outputWidth: outputWidth, scale: 2 / 255, offset: -1)
            let output = UnsafeMutableBufferPointer<Float>.allocate(capacity: outputHeight * outputWidth * 3)
            defer { output.deallocate() }
            for (index, (width, height)) in sources.enumerated() {
                let pixels = Self.randomImage(width: width, height: height, seed: UInt64(index + 1))
                output.initialize(repeating: .nan)
                preprocessor.run(pixels, into: output.baseAddress!)
                let expected = Self.plainResize(pixels, height: outputHeight, width: outputWidth, scale: 2 / 255, offset: -1)
                let differing = zip(output, expected).filter { $0.bitPattern != $1.bitPattern }.count
                XCTAssertEqual(differing, 0, "\(width)x\(height) -> \(outputWidth)x\(outputHeight): values differing from the plain formula")
            }
        }
    }
}
