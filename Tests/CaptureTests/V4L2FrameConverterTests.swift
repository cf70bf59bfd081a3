@testable import Capture
import Foundation
import Values
import XCTest

/// The camera conversion paths, fed frames the ffmpeg CLI produced, against the CLI's own RGB24 conversion.
final class V4L2FrameConverterTests: XCTestCase {
    /// messi5.jpg's size; its even width suits 4:2:2.
    private let width = 548, height = 342

    func testYUYVMatchesFFmpegCLI() throws {
        let directory = try temporaryDirectory(self)
        let yuyv = directory.appendingPathComponent("frame.yuyv").path
        let reference = directory.appendingPathComponent("reference.rgb").path
        try runFFmpeg(["-i", Media.path("messi5.jpg"), "-f", "rawvideo", "-pix_fmt", "yuyv422", yuyv])
        try runFFmpeg(["-f", "rawvideo", "-pix_fmt", "yuyv422", "-video_size", "\(width)x\(height)", "-i", yuyv,
                       "-f", "rawvideo", "-pix_fmt", "rgb24", "-sws_flags", "bilinear", reference])
        let frame = try Data(contentsOf: URL(fileURLWithPath: yuyv))
        XCTAssertEqual(frame.count, width * height * 2)
        let expected = try Data(contentsOf: URL(fileURLWithPath: reference))

        let converter = try V4L2FrameConverter(input: "test", pixelFormat: .yuyv, width: width, height: height)
        let pixels = try XCTUnwrap(frame.withUnsafeBytes { try converter.convert($0, pool: PixelBufferPool()) })
        assertIdentical(pixels, expected)

        // Drivers may pad rows; the stride they report must be honoured.
        let stride = width * 2 + 56
        let padded = Self.pad(frame, rowLength: width * 2, rows: height, stride: stride)
        let stridedConverter = try V4L2FrameConverter(input: "test", pixelFormat: .yuyv, width: width, height: height,
                                                      bytesPerLine: stride)
        let stridedPixels = try XCTUnwrap(padded.withUnsafeBytes { try stridedConverter.convert($0, pool: PixelBufferPool()) })
        assertIdentical(stridedPixels, expected)
    }

    func testMotionJPEGMatchesFFmpegCLI() throws {
        let directory = try temporaryDirectory(self)
        // Webcams send 4:2:2 JPEG; messi5.jpg itself is 4:2:0, so both subsamplings are covered.
        let encoded = directory.appendingPathComponent("frame.mjpg").path
        try runFFmpeg(["-i", Media.path("messi5.jpg"), "-c:v", "mjpeg", "-pix_fmt", "yuvj422p", "-q:v", "3", "-f", "mjpeg", encoded])
        for path in [encoded, try Media.path("messi5.jpg")] {
            let reference = directory.appendingPathComponent("reference.rgb").path
            try runFFmpeg(["-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-sws_flags", "bilinear", reference])
            let expected = try Data(contentsOf: URL(fileURLWithPath: reference))
            let jpeg = try Data(contentsOf: URL(fileURLWithPath: path))

            let converter = try V4L2FrameConverter(input: "test", pixelFormat: .mjpeg, width: width, height: height)
            let pool = PixelBufferPool()
            let pixels = try XCTUnwrap(jpeg.withUnsafeBytes { try converter.convert($0, pool: pool) }, path)
            XCTAssertEqual(pixels.width, width)
            XCTAssertEqual(pixels.height, height)
            assertIdentical(pixels, expected, path)

            // The decoder and scaler are reused frame after frame, into recycled buffers.
            let first = ObjectIdentifier(pixels)
            pixels.recycle()
            let again = try XCTUnwrap(jpeg.withUnsafeBytes { try converter.convert($0, pool: pool) })
            XCTAssertEqual(ObjectIdentifier(again), first)
            assertIdentical(again, expected, "\(path), second time")
        }
    }

    func testRGB24FromLibv4lconvertIsCopiedRowByRow() throws {
        var rgb = Data(count: width * height * 3)
        rgb.withUnsafeMutableBytes { bytes in
            for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: index &* 7 &+ index / 1000) }
        }
        let stride = width * 3 + 8
        let converter = try V4L2FrameConverter(input: "test", pixelFormat: .rgb24, width: width, height: height,
                                               bytesPerLine: stride)
        let padded = Self.pad(rgb, rowLength: width * 3, rows: height, stride: stride)
        let pixels = try XCTUnwrap(padded.withUnsafeBytes { try converter.convert($0, pool: PixelBufferPool()) })
        assertIdentical(pixels, rgb)
    }

    func testShortAndCorruptBuffersAreSkipped() throws {
        let pool = PixelBufferPool()
        let yuyv = try V4L2FrameConverter(input: "test", pixelFormat: .yuyv, width: width, height: height)
        let short = Data(count: width * height * 2 - 1)
        XCTAssertNil(try short.withUnsafeBytes { try yuyv.convert($0, pool: pool) })

        let rgb = try V4L2FrameConverter(input: "test", pixelFormat: .rgb24, width: width, height: height)
        XCTAssertNil(try Data(count: 100).withUnsafeBytes { try rgb.convert($0, pool: pool) })

        let mjpeg = try V4L2FrameConverter(input: "test", pixelFormat: .mjpeg, width: width, height: height)
        let garbage = Data(repeating: 0x55, count: 4096)
        XCTAssertNil(try garbage.withUnsafeBytes { try mjpeg.convert($0, pool: pool) })
        XCTAssertNil(try Data().withUnsafeBytes { try mjpeg.convert($0, pool: pool) })
        // A good frame after bad ones still decodes.
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: Media.path("messi5.jpg")))
        XCTAssertNotNil(try jpeg.withUnsafeBytes { try mjpeg.convert($0, pool: pool) })
    }

    func testFormatsWithoutAConverterAreRefused() {
        XCTAssertThrowsError(try V4L2FrameConverter(input: "/dev/video9", pixelFormat: V4L2PixelFormat("H264"),
                                                    width: 640, height: 480)) { error in
            XCTAssertEqual((error as? CaptureError)?.description, "/dev/video9: cannot convert pixel format H264 to RGB24")
        }
    }

    /// Rows of `rowLength` bytes spread out to `stride`, with junk in the padding.
    private static func pad(_ data: Data, rowLength: Int, rows: Int, stride: Int) -> Data {
        var padded = Data(repeating: 0xEE, count: stride * rows)
        for row in 0..<rows {
            padded.replaceSubrange(row * stride..<row * stride + rowLength, with: data[row * rowLength..<(row + 1) * rowLength])
        }
        return padded
    }

    private func assertIdentical(_ pixels: PixelBuffer, _ expected: Data, _ message: String = "",
                                 file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(expected.count, pixels.width * pixels.height * 3, "reference size", file: file, line: line)
        guard expected.count == pixels.width * pixels.height * 3 else { return }
        let frame = Frame(sourceID: "test", sequence: 0, pts: nil, captureTime: Date(), captureInstant: .now, pixels: pixels)
        let (differing, maxDelta) = compare(frame, with: expected)
        XCTAssertEqual(differing, 0, "\(message): \(differing) bytes differ, by up to \(maxDelta)", file: file, line: line)
    }
}
