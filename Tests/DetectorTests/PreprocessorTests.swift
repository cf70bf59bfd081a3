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

    /// The input written directly in the network's type is, byte for byte, what oneDNN's own conversion (the reorder
    /// `bench` still runs) makes of the f32 input: real frames and random images, through the bf16 and int8 networks.
    func testDirectInputIsWhatOneDNNMakesOfTheF32Input() throws {
        let frames = try Array(FrameParityTests.decode("vtest.avi", frames: [10, 400]).values)
            + FrameParityTests.decode("messi5.jpg", frames: [0]).values
        XCTAssertEqual(frames.count, 3)
        let images = frames + [Self.randomImage(width: 768, height: 576, seed: 7), Self.randomImage(width: 641, height: 479, seed: 8)]
        for model in [try PrecisionTests.bf16.get(), try PrecisionTests.int8.get()] {
            let network = model.network, spec = model.network.spec
            XCTAssertNotEqual(network.inputEncoding, .f32)
            let engine = try InferenceEngine(network: network)
            let f32 = Preprocessor(outputHeight: spec.input.height, outputWidth: spec.input.width, scale: spec.inputScale, offset: spec.inputOffset)
            let direct = Preprocessor(outputHeight: spec.input.height, outputWidth: spec.input.width, scale: spec.inputScale,
                                      offset: spec.inputOffset, encoding: network.inputEncoding)
            let bytes = spec.input.elements * DNNL.elementBytes(network.tensorTypes[0])
            let written = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 64)
            defer { written.deallocate() }
            for (index, pixels) in images.enumerated() {
                f32.run(pixels, into: engine.input)
                try engine.convertInput()
                direct.run(pixels, into: written.baseAddress!)
                let converted = UnsafeRawBufferPointer(start: engine.encodedInput, count: bytes)
                let differing = zip(written, converted).filter { $0 != $1 }.count
                XCTAssertEqual(differing, 0, "\(network.precision) image \(index): bytes differing from oneDNN's conversion")
            }
        }
    }

    /// The encoders on the values where rounding is decided: exact ties (int8: x.5 after the scale; bf16: a low half of
    /// exactly 0x8000), their neighbours, saturation, and random values, against oneDNN's conversion of the same floats.
    func testEncodersRoundTiesAndSaturateAsOneDNNDoes() throws {
        for model in [try PrecisionTests.bf16.get(), try PrecisionTests.int8.get()] {
            let network = model.network
            let engine = try InferenceEngine(network: network)
            let count = network.spec.input.elements
            var values: [Float] = [0, -0.0, 1e9, -1e9]
            var state: UInt64 = 42
            func random() -> UInt32 {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt32(truncatingIfNeeded: state >> 32)
            }
            switch network.inputEncoding {
            case .s8(let scale):
                var ties = 0
                for k in -140...140 {
                    let tie = (Float(k) + 0.5) / scale
                    if tie * scale == Float(k) + 0.5 { ties += 1 }
                    values += [tie, tie.nextUp, tie.nextDown]
                }
                XCTAssertGreaterThan(ties, 50, "enough exact ties at the network's input scale \(scale)")
                while values.count < count { values.append(Float(Int32(bitPattern: random())) / Float(Int32.max) * 2) }
            case .bf16:
                while values.count < count {
                    // Finite values with the low half exactly at the tie, and around it.
                    let high = random() & 0xBF7F_0000 | 0x0080_0000
                    values += [0x8000, 0x7FFF, 0x8001, 0x0000, 0xFFFF].map { Float(bitPattern: high | $0) }
                }
            case .f32:
                XCTFail("a \(network.precision) network with an f32 input")
            }
            values.removeLast(values.count - count)
            engine.input.update(from: values, count: count)
            try engine.convertInput()
            let converted = engine.encodedInput
            var differing = 0
            for start in stride(from: 0, to: count - 7, by: 8) {
                let eight = SIMD8<Float>(values[start..<(start + 8)])
                switch network.inputEncoding {
                case .s8(let scale):
                    let mine = S8Elements(scale: scale, clamps: true).encode(eight)
                    for lane in 0..<8 where mine[lane] != converted.load(fromByteOffset: start + lane, as: Int8.self) { differing += 1 }
                case .bf16:
                    let mine = BF16Elements().encode(eight)
                    for lane in 0..<8 where mine[lane] != converted.load(fromByteOffset: (start + lane) * 2, as: UInt16.self) { differing += 1 }
                case .f32:
                    break
                }
            }
            XCTAssertEqual(differing, 0, "\(network.precision): values encoded differently from oneDNN's conversion")
        }
    }
}
