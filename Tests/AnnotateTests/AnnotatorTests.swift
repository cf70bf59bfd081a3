import Annotate
import Capture
import Foundation
import Values
import XCTest

struct DecodeFailure: Error, CustomStringConvertible {
    var description: String { "FFmpeg decoded no picture from the JPEG" }
}

/// Boxes and captions drawn by our own code, through libavcodec's JPEG encoder, read back with FFmpeg's decoder.
final class AnnotatorTests: XCTestCase {
    /// A uniform mid-grey frame: anything drawn stands out from it.
    func greyFrame(width: Int, height: Int) -> PixelBuffer {
        let pixels = PixelBuffer(width: width, height: height)
        pixels.bytes.initializeMemory(as: UInt8.self, repeating: 128, count: pixels.rowBytes * height)
        return pixels
    }

    func person(_ xmin: Float, _ ymin: Float, _ xmax: Float, _ ymax: Float, score: Float = 0.9) -> Detection {
        Detection(classID: 1, label: "person", score: score, xmin: xmin, ymin: ymin, xmax: xmax, ymax: ymax)
    }

    /// Encodes, writes and decodes the frame with FFmpeg, as any JPEG reader would.
    func roundTrip(_ pixels: PixelBuffer, encoder: JPEGEncoder = JPEGEncoder()) throws -> Frame {
        let bytes = try encoder.encode(pixels)
        XCTAssertEqual(Array(bytes.prefix(2)), [0xFF, 0xD8], "a JPEG starts with SOI")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("annotate-\(UUID().uuidString).jpg")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(bytes).write(to: file)
        let source = try FFmpegSource(input: file.path)
        defer { source.close() }
        guard let frame = try source.next() else { throw DecodeFailure() }
        return frame
    }

    /// How far a decoded pixel is from the grey background.
    func contrast(_ frame: Frame, _ x: Int, _ y: Int) -> Int {
        let p = frame.pixels.bytes.assumingMemoryBound(to: UInt8.self) + y * frame.pixels.rowBytes + x * 3
        return abs(Int(p[0]) - 128) + abs(Int(p[1]) - 128) + abs(Int(p[2]) - 128)
    }

    /// The first and last positions along a line whose pixel stands out, if any.
    func drawnExtent(_ positions: StrideTo<Int>, _ stand: (Int) -> Bool) -> (first: Int, last: Int)? {
        let hits = positions.filter(stand)
        guard let first = hits.first, let last = hits.last else { return nil }
        return (first, last)
    }

    func testDrawnBoxIsWhereTheDetectionsBoxIsAfterAJPEGRoundTrip() throws {
        // Odd sizes too: 4:2:0 subsampling must not cut off the last row or column.
        for (width, height) in [(320, 240), (321, 241)] {
            let pixels = greyFrame(width: width, height: height)
            let box = person(0.25, 0.3, 0.75, 0.8)
            Annotator.draw([box], on: pixels)
            let decoded = try roundTrip(pixels)
            XCTAssertEqual(decoded.width, width)
            XCTAssertEqual(decoded.height, height)
            let (x0, x1) = (Int((0.25 * Float(width)).rounded()), Int((0.75 * Float(width)).rounded()) - 1)
            let (y0, y1) = (Int((0.3 * Float(height)).rounded()), Int((0.8 * Float(height)).rounded()) - 1)
            // Across the middle of the box: the left and right edges, nothing drawn in between.
            let middleRow = (y0 + y1) / 2
            let across = try XCTUnwrap(drawnExtent(stride(from: 0, to: width, by: 1)) { contrast(decoded, $0, middleRow) > 90 })
            XCTAssertEqual(Double(across.first), Double(x0), accuracy: 2, "left edge at \(width)x\(height)")
            XCTAssertEqual(Double(across.last), Double(x1), accuracy: 2, "right edge at \(width)x\(height)")
            XCTAssertLessThan(contrast(decoded, (x0 + x1) / 2, middleRow), 30, "the inside of the box is left alone")
            // Down a column right of the caption: the top and bottom edges.
            let column = x1 - 8
            let down = try XCTUnwrap(drawnExtent(stride(from: 0, to: height, by: 1)) { contrast(decoded, column, $0) > 90 })
            XCTAssertEqual(Double(down.first), Double(y0), accuracy: 2, "top edge at \(width)x\(height)")
            XCTAssertEqual(Double(down.last), Double(y1), accuracy: 2, "bottom edge at \(width)x\(height)")
            // The caption sits on a strip just above the box, at its left.
            XCTAssertGreaterThan(contrast(decoded, x0 + 3, y0 - 6), 90, "caption strip above the box")
            XCTAssertLessThan(contrast(decoded, x0 + 3, y0 - 30), 30, "nothing far above the box")
        }
    }

    func testBoxesOutsideTheFrameAreClippedAndInvalidOnesSkipped() throws {
        let pixels = greyFrame(width: 64, height: 48)
        Annotator.draw([person(.nan, 0, 1, 1), person(0.5, 0.5, 0.5, 0.9), person(-.infinity, 0, 1, 1)], on: pixels)
        let untouched = UnsafeRawBufferPointer(start: pixels.bytes, count: pixels.rowBytes * 48).allSatisfy { $0 == 128 }
        XCTAssertTrue(untouched, "a box with a NaN, infinite or zero-width side draws nothing")

        Annotator.draw([person(-0.5, -0.5, 1.5, 1.5)], on: pixels)
        let rgb = pixels.bytes.assumingMemoryBound(to: UInt8.self)
        let color = Annotator.palette[1]
        for (x, y) in [(0, 47), (63, 47), (63, 0), (0, 24)] {
            let p = rgb + y * pixels.rowBytes + x * 3
            XCTAssertEqual(RGB(p[0], p[1], p[2]), color, "the outline follows the frame's edge at (\(x), \(y))")
        }
        let centre = rgb + 30 * pixels.rowBytes + 32 * 3
        XCTAssertEqual([centre[0], centre[1], centre[2]], [128, 128, 128])
    }

    func testCaptionsNameLabelScoreAndTrack() {
        XCTAssertEqual(Annotator.caption(person(0, 0, 1, 1, score: 0.874)), "person 0.87")
        var tracked = person(0, 0, 1, 1, score: 0.05)
        tracked.trackID = 12
        XCTAssertEqual(Annotator.caption(tracked), "person 0.05 #12")
        XCTAssertEqual(Annotator.caption(person(0, 0, 1, 1, score: 1)), "person 1.00")
    }

    func testTrackIDPicksTheColour() throws {
        let pixels = greyFrame(width: 64, height: 48)
        var tracked = person(0, 0.5, 0.5, 1)
        tracked.trackID = 3
        Annotator.draw([tracked], on: pixels)
        let p = pixels.bytes.assumingMemoryBound(to: UInt8.self) + 47 * pixels.rowBytes
        XCTAssertEqual(RGB(p[0], p[1], p[2]), Annotator.palette[3])
    }

    func testOneEncoderFollowsSizeChanges() throws {
        let encoder = JPEGEncoder()
        for (width, height) in [(320, 240), (640, 360), (320, 240)] {
            let decoded = try roundTrip(greyFrame(width: width, height: height), encoder: encoder)
            XCTAssertEqual(decoded.width, width)
            XCTAssertEqual(decoded.height, height)
            XCTAssertLessThan(contrast(decoded, width / 2, height / 2), 6, "grey stays grey")
        }
    }

    /// The encoder's own RGB-to-YCbCr conversion (JPEG's full range): saturated colours, white, black and grey come
    /// back from FFmpeg's decoder as they went in, within JPEG's loss; at an odd size, its last column and row too.
    func testColoursSurviveTheJPEGRoundTrip() throws {
        let colours = [RGB(255, 0, 0), RGB(0, 255, 0), RGB(0, 0, 255), RGB(255, 255, 255), RGB(0, 0, 0), RGB(128, 128, 128),
                       RGB(255, 220, 0), RGB(160, 80, 255)]
        for (width, height) in [(128, 64), (131, 67)] {
            let pixels = PixelBuffer(width: width, height: height)
            // Stripes 16 columns wide, the last one to the right edge.
            for y in 0..<height {
                let row = pixels.bytes.assumingMemoryBound(to: UInt8.self) + y * pixels.rowBytes
                for x in 0..<width {
                    let colour = colours[min(x / 16, colours.count - 1)]
                    (row[3 * x], row[3 * x + 1], row[3 * x + 2]) = (colour.r, colour.g, colour.b)
                }
            }
            let decoded = try roundTrip(pixels)
            XCTAssertEqual(decoded.width, width)
            XCTAssertEqual(decoded.height, height)
            func pixel(_ x: Int, _ y: Int) -> RGB {
                let p = decoded.pixels.bytes.assumingMemoryBound(to: UInt8.self) + y * decoded.pixels.rowBytes + x * 3
                return RGB(p[0], p[1], p[2])
            }
            func near(_ a: RGB, _ b: RGB) -> Bool {
                abs(Int(a.r) - Int(b.r)) <= 10 && abs(Int(a.g) - Int(b.g)) <= 10 && abs(Int(a.b) - Int(b.b)) <= 10
            }
            for (stripe, colour) in colours.enumerated() {
                let found = pixel(stripe * 16 + 8, height / 2)
                XCTAssertTrue(near(found, colour), "\(width)x\(height), stripe \(stripe): \(found) for \(colour)")
            }
            let corner = pixel(width - 1, height - 1)
            XCTAssertTrue(near(corner, colours[colours.count - 1]), "\(width)x\(height), last pixel: \(corner)")
        }
    }

    func testFrameCopiesHoldPixelsUntilTakenAndStayBounded() throws {
        let copies = FrameCopies(capacity: 2)
        func frame(_ sequence: Int, value: UInt8) -> Frame {
            let pixels = PixelBuffer(width: 8, height: 4)
            pixels.bytes.initializeMemory(as: UInt8.self, repeating: value, count: pixels.rowBytes * 4)
            return Frame(sourceID: "cam", sequence: sequence, pts: nil, captureTime: Date(), captureInstant: .now, pixels: pixels)
        }
        XCTAssertTrue(copies.keep(frame(0, value: 10)))
        XCTAssertTrue(copies.keep(frame(1, value: 11)))
        // Full: the copies of the source's earlier frames make room, since their records are out.
        XCTAssertTrue(copies.keep(frame(5, value: 15)))
        XCTAssertEqual(copies.count, 1)
        XCTAssertNil(copies.take(source: "cam", frame: 0))
        let copy = try XCTUnwrap(copies.take(source: "cam", frame: 5))
        XCTAssertTrue(UnsafeRawBufferPointer(start: copy.bytes, count: copy.rowBytes * 4).allSatisfy { $0 == 15 })
        XCTAssertNil(copies.take(source: "cam", frame: 5), "a copy is handed out once")
        copy.recycle()
        // Full with no earlier frame of the same source: nothing more is copied.
        XCTAssertTrue(copies.keep(frame(7, value: 1)))
        XCTAssertTrue(copies.keep(frame(8, value: 1)))
        XCTAssertFalse(copies.keep(Frame(sourceID: "other", sequence: 0, pts: nil, captureTime: Date(), captureInstant: .now,
                                         pixels: PixelBuffer(width: 8, height: 4))))
    }
}
