import Capture
import Foundation
import TestSupport
import Values
import XCTest
@testable import Detector

/// Whole-image detections against TensorFlow running the full frozen graph (preprocessor, network,
/// post-processor) on the same decoded RGB frames. Fixtures: scripts/make_fixtures.py.
final class FrameParityTests: XCTestCase {
    struct Expected {
        let media: String
        let frame: Int
        let rgbHash: UInt64
        let detections: [(box: [Float], score: Float, classID: Int)]
    }

    static func expectations() throws -> [Expected] {
        let fixture = try NetworkParityTests.fixture("frames")
        let frames = try XCTUnwrap(fixture["frames"] as? [[String: Any]])
        return try frames.map { entry in
            let detections = try XCTUnwrap(entry["detections"] as? [[String: Any]]).map { d in
                (try XCTUnwrap((d["box"] as? [Double]).flatMap { $0.count == 4 ? $0 : nil }, "a box is 4 numbers").map(Float.init),
                 Float(try XCTUnwrap(d["score"] as? Double)),
                 Int(try XCTUnwrap(d["class"] as? Double)))
            }
            return Expected(media: try XCTUnwrap(entry["media"] as? String), frame: try XCTUnwrap(entry["frame"] as? Int),
                            rgbHash: try XCTUnwrap(UInt64(XCTUnwrap(entry["rgb_fnv1a64"] as? String), radix: 16)),
                            detections: detections)
        }
    }

    /// Decodes the wanted frames of one media file with the product's own FFmpeg source.
    static func decode(_ media: String, frames wanted: Set<Int>) throws -> [Int: PixelBuffer] {
        let source = try FFmpegSource(input: TestPaths.media(media))
        var found: [Int: PixelBuffer] = [:]
        while found.count < wanted.count, let frame = try source.next() {
            if wanted.contains(frame.sequence) {
                let copy = PixelBuffer(width: frame.width, height: frame.height)
                copy.bytes.copyMemory(from: frame.pixels.bytes, byteCount: frame.pixels.rowBytes * frame.height)
                found[frame.sequence] = copy
            }
            frame.pixels.recycle()
        }
        return found
    }

    static func hash(_ pixels: PixelBuffer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for y in 0..<pixels.height {
            h = fnv1a64(UnsafeRawBufferPointer(start: pixels.bytes + y * pixels.rowBytes, count: pixels.width * 3), hash: h)
        }
        return h
    }

    func testDetectionsMatchTensorFlowOnRealFrames() throws {
        let detector = try NetworkParityTests.model.get().makeDetector()
        let expectations = try Self.expectations()
        XCTAssertEqual(expectations.count, 6)
        var compared = 0
        for (media, group) in Dictionary(grouping: expectations, by: \.media) {
            let frames = try Self.decode(media, frames: Set(group.map(\.frame)))
            for expected in group {
                let name = "\(media) frame \(expected.frame)"
                let pixels = try XCTUnwrap(frames[expected.frame], "\(name) not decoded")
                XCTAssertEqual(Self.hash(pixels), expected.rgbHash, "\(name): decoded RGB differs from the fixture's ffmpeg decode")
                // Everything the graph reports (its own score threshold is 1e-8), highest first.
                let mine = try detector.detect(pixels, threshold: 0)
                XCTAssertEqual(mine.count, expected.detections.count, "\(name): detection count")
                // Order can swap only where scores tie within the tolerance, so match each reference box to ours.
                for (rank, reference) in expected.detections.enumerated() {
                    let refBox = SIMD4<Float>(reference.box[0], reference.box[1], reference.box[2], reference.box[3])
                    let match = mine.filter { abs($0.score - reference.score) <= 1e-3 && $0.classID == reference.classID }
                        .map { Postprocessor.iou(SIMD4($0.ymin, $0.xmin, $0.ymax, $0.xmax), refBox) }.max() ?? 0
                    XCTAssertGreaterThanOrEqual(match, 0.99, "\(name): reference detection #\(rank) score \(reference.score) box \(reference.box) has no match")
                    compared += 1
                }
                if let top = mine.first, let ref = expected.detections.first {
                    XCTAssertEqual(top.score, ref.score, accuracy: 1e-3, "\(name): top score")
                }
            }
        }
        XCTAssertEqual(compared, expectations.reduce(0) { $0 + $1.detections.count })
    }
}
