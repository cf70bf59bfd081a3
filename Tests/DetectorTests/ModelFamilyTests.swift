import Capture
import Foundation
import TestSupport
import Values
import XCTest
@testable import Detector

/// The SSD MobileNet family as users export it: small graphs made by the TF Object Detection API's own model
/// builder and exporter (random weights, real BatchNorm statistics), against TensorFlow running them.
/// Fixtures: made by scripts/make_odapi_fixtures.py, which scripts/test.sh runs into .cache/fixtures/odapi
/// (<name>.pb, .reference.json, .reference.f32; no model file is committed).
final class ModelFamilyTests: XCTestCase {
    struct Reference {
        let json: [String: Any]
        let raw: [Float]

        func slice(_ key: String) throws -> ArraySlice<Float> {
            let entry = try XCTUnwrap((json["raw"] as? [String: Any])?[key] as? [String: Any], "\(key) in the reference")
            let offset = try XCTUnwrap(entry["offset"] as? Int), count = try XCTUnwrap(entry["count"] as? Int)
            guard offset >= 0, count >= 0, offset + count <= raw.count else { throw XCTSkip("reference \(key) out of range") }
            return raw[offset..<(offset + count)]
        }

        func size(_ key: String) throws -> (height: Int, width: Int) {
            let size = try XCTUnwrap(json[key] as? [Int], key)
            guard size.count == 2 else { throw XCTSkip("\(key) is not [height, width]") }
            return (size[0], size[1])
        }
    }

    struct MissingFixture: Error, CustomStringConvertible {
        let path: String
        var description: String { "\(path) is missing: scripts/test.sh makes it (scripts/make_odapi_fixtures.py)" }
    }

    static func fixture(_ name: String, _ suffix: String) throws -> URL {
        let url = TestPaths.repoRoot.appendingPathComponent(".cache/fixtures/odapi/\(name).\(suffix)")
        guard FileManager.default.fileExists(atPath: url.path) else { throw MissingFixture(path: url.path) }
        return url
    }

    static func reference(_ name: String) throws -> Reference {
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: fixture(name, "reference.json"))) as? [String: Any])
        let bytes = try Data(contentsOf: fixture(name, "reference.f32"))
        let raw = bytes.withUnsafeBytes { buffer in
            (0..<(buffer.count / 4)).map { Float(bitPattern: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        return Reference(json: json, raw: raw)
    }

    /// The fixture script's image: pixel(y, x, c) = (y * 31 + x * 17 + c * 97 + ((y * x) % 23) * 5) % 256.
    static func image(height: Int, width: Int) -> PixelBuffer {
        let pixels = PixelBuffer(width: width, height: height)
        let bytes = pixels.bytes.assumingMemoryBound(to: UInt8.self)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    bytes[y * pixels.rowBytes + x * 3 + c] = UInt8((y * 31 + x * 17 + c * 97 + ((y * x) % 23) * 5) % 256)
                }
            }
        }
        return pixels
    }

    static func maxDifference(_ mine: UnsafeBufferPointer<Float>, _ theirs: ArraySlice<Float>) -> Float {
        guard mine.count == theirs.count else { return .infinity }
        return zip(mine, theirs).map { abs($0 - $1) }.max() ?? 0
    }

    /// How far float32 raw outputs may be from the float64 ones. Largest differences from float64 (boxes / logits)
    /// measured on the fixtures `scripts/test.sh` makes, Sightline then TensorFlow's float32 (`tensorflow_f32_error`
    /// in each reference): alpha 1.4: 0.96e-4 / 0.90e-4, 1.33e-4 / 1.65e-4; SSD-MobileNetV1: 1.12e-4 / 1.07e-4,
    /// 0.88e-4 / 1.21e-4; alpha 0.35: 2.3e-5 / 3.5e-5, 1.8e-5 / 2.1e-5; SSD-MobileNetV2: 5.1e-5 / 5.2e-5,
    /// 5.6e-5 / 3.9e-5. So 1e-4 is at float32's own rounding for the wider graphs, where TensorFlow itself misses
    /// it; this bound is one TensorFlow's float32 would fail on alpha 1.4.
    static let exactTolerance: Float = 1.25e-4

    /// Loads fixture `name` and checks it against TensorFlow: input size and classes, the graph's own anchors, raw
    /// outputs within `rawTolerance` for an image of the input size, and the detections for an image the graph resizes.
    @discardableResult
    func checkAgainstTensorFlow(_ name: String, rawTolerance: Float = 1e-4, file: StaticString = #filePath, line: UInt = #line) throws -> Model {
        let reference = try Self.reference(name)
        let model = try Model(path: Self.fixture(name, "pb").path)
        let input = try reference.size("input_size")
        XCTAssertEqual(model.inputHeight, input.height, "\(name): input height", file: file, line: line)
        XCTAssertEqual(model.inputWidth, input.width, "\(name): input width", file: file, line: line)
        XCTAssertEqual(model.classCount, reference.json["classes"] as? Int, "\(name): classes", file: file, line: line)

        let corners = try reference.slice("anchors")
        XCTAssertEqual(model.anchors.centerSize.count * 4, corners.count, "\(name): anchor count", file: file, line: line)
        var anchorError: Float = 0
        for (i, mine) in model.anchors.centerSize.enumerated() where i * 4 + 3 < corners.count {
            let c = corners.startIndex + i * 4
            let (ymin, xmin, ymax, xmax) = (corners[c], corners[c + 1], corners[c + 2], corners[c + 3])
            let h = ymax - ymin, w = xmax - xmin
            let difference = mine - SIMD4(ymin + h / 2, xmin + w / 2, h, w)
            anchorError = max(anchorError, max(difference.max(), -difference.min()))
        }
        XCTAssertLessThanOrEqual(anchorError, 1e-6, "\(name): anchors differ from the graph's own by up to \(anchorError)", file: file, line: line)

        let detector = try model.makeDetector()
        _ = try detector.detect(Self.image(height: input.height, width: input.width), threshold: 0)
        let (boxes, logits) = detector.rawOutputs
        let boxError = Self.maxDifference(boxes, try reference.slice("box_encodings"))
        let logitError = Self.maxDifference(logits, try reference.slice("class_logits"))
        XCTAssertLessThanOrEqual(boxError, rawTolerance, "\(name): box encodings differ from TensorFlow by up to \(boxError)", file: file, line: line)
        XCTAssertLessThanOrEqual(logitError, rawTolerance, "\(name): class logits differ from TensorFlow by up to \(logitError)", file: file, line: line)
        // The same network computed in float64 (by the fixture script) is the exact answer TF's float32 is also judged by.
        let exactBoxError = Self.maxDifference(boxes, try reference.slice("box_encodings_float64"))
        let exactLogitError = Self.maxDifference(logits, try reference.slice("class_logits_float64"))
        XCTAssertLessThanOrEqual(exactBoxError, Self.exactTolerance, "\(name): box encodings differ from float64 by up to \(exactBoxError)",
                                 file: file, line: line)
        XCTAssertLessThanOrEqual(exactLogitError, Self.exactTolerance, "\(name): class logits differ from float64 by up to \(exactLogitError)",
                                 file: file, line: line)

        let size = try reference.size("detect_image_size")
        let mine = try detector.detect(Self.image(height: size.height, width: size.width), threshold: 0)
        let expected = try XCTUnwrap(reference.json["detections"] as? [[String: Any]])
        XCTAssertGreaterThan(expected.count, 0, "\(name): the reference has detections to compare", file: file, line: line)
        XCTAssertEqual(mine.count, expected.count, "\(name): detection count", file: file, line: line)
        for (rank, detection) in expected.enumerated() {
            let box = try XCTUnwrap(detection["box"] as? [Double]).map(Float.init)
            let score = Float(try XCTUnwrap(detection["score"] as? Double)), classID = try XCTUnwrap(detection["class"] as? Int)
            guard box.count == 4 else { throw XCTSkip("reference box \(rank) is not 4 numbers") }
            let match = mine.filter { abs($0.score - score) <= 1e-3 && $0.classID == classID }
                .map { Postprocessor.iou(SIMD4($0.ymin, $0.xmin, $0.ymax, $0.xmax), SIMD4(box[0], box[1], box[2], box[3])) }.max() ?? 0
            XCTAssertGreaterThanOrEqual(match, 0.99, "\(name): TF detection #\(rank) (class \(classID), score \(score), box \(box)) has no match",
                                        file: file, line: line)
        }
        return model
    }

    /// SSDLite-MobileNetV2, depth multiplier 0.35, 224x224, COCO's 90 classes; dynamic input shape (the resize
    /// inside the exporter's while loop), normalised before resizing as OD API 2.x does.
    func testSSDLiteMobileNetV2Alpha035At224With90Classes() throws {
        let model = try checkAgainstTensorFlow("ssdlite_mobilenet_v2_a035_224_c90")
        XCTAssertEqual(model.labels.name(for: 1), "person", "a 90-class graph without labels gets COCO's names")
        XCTAssertEqual(model.warnings, [])
    }

    /// SSDLite-MobileNetV2, depth multiplier 1.4, non-square 96x128, exported with a static input shape
    /// (no resize node: the size is `image_tensor`'s shape); 3 classes and no labels.
    /// Its raw outputs differ from TensorFlow's by up to 1.2e-4 (boxes) and 2.4e-4 (logits), not within issue 11's
    /// 1e-4: that is float32 rounding over the 1.4x wider layers, not a mistake. TensorFlow's own float32 logits are
    /// 1.65e-4 from the float64 result and Sightline's 0.9e-4 (see `exactTolerance`), on opposite sides; the
    /// detections match as closely as the other variants'.
    func testSSDLiteMobileNetV2Alpha140NonSquareStaticShape() throws {
        let model = try checkAgainstTensorFlow("ssdlite_mobilenet_v2_a140_96x128_static", rawTolerance: 2.5e-4)
        XCTAssertEqual(model.labels.name(for: 1), "class_1", "no COCO names for a 3-class graph")
        XCTAssertEqual(model.warnings.count, 1)
        XCTAssertTrue(model.warnings.first?.contains("no labels and 3 classes, not COCO's 90") ?? false, "\(model.warnings)")
    }

    /// SSD-MobileNetV1 (not lite), depth multiplier 0.5, non-square 128x96, exported with input shape [1,-1,-1,3]
    /// (the resize outside any loop), base anchor size 0.8x1.2 and two labels for three classes in its sidecar.
    /// Raw outputs within 1.2e-4 / 1.5e-4 of TensorFlow's: both are about 1e-4 from the float64 result (boxes
    /// 1.12e-4 and 0.88e-4, logits 1.07e-4 and 1.21e-4, Sightline's first), so 1e-4 between them is not float32's to give.
    func testSSDMobileNetV1NonSquareWithBaseAnchorSize() throws {
        let model = try checkAgainstTensorFlow("ssd_mobilenet_v1_a050_128x96", rawTolerance: 1.5e-4)
        XCTAssertEqual(model.settings.baseAnchorSize, [0.8, 1.2])
        XCTAssertEqual(model.labels.name(for: 2), "beta")
        XCTAssertEqual(model.labels.name(for: 3), "class_3")
        XCTAssertEqual(model.warnings, ["the sidecar's 'labels' names classes up to id 2 but the model predicts 3 classes (ids above 2 are named class_<id>)"])
    }

    /// SSD-MobileNetV2 (not lite: full 1x1 box predictor convolutions and no depthwise feature-map layers),
    /// depth multiplier 0.5, 128x128, dynamic input shape, three labels in its sidecar.
    func testSSDMobileNetV2NotLite() throws {
        let model = try checkAgainstTensorFlow("ssd_mobilenet_v2_a050_128")
        XCTAssertEqual(model.labels.name(for: 3), "gamma")
        XCTAssertEqual(model.warnings, [])
    }

    func testALabelFileThatFitsGivesNoWarning() throws {
        let dir = try TestPaths.temporaryDirectory()
        let labels = dir.appendingPathComponent("labels.txt")
        try Data("cat\ndog\nbird\n".utf8).write(to: labels)
        let model = try Model(path: Self.fixture("ssdlite_mobilenet_v2_a140_96x128_static", "pb").path, labelsPath: labels.path)
        XCTAssertEqual(model.warnings, [])
        XCTAssertEqual(model.labels.name(for: 3), "bird")
        let coco = try Model(path: Self.fixture("ssdlite_mobilenet_v2_a035_224_c90", "pb").path, labelsPath: labels.path)
        XCTAssertEqual(coco.warnings, ["label file \(labels.path) names classes up to id 3 but the model predicts 90 classes (ids above 3 are named class_<id>)"])
    }
}
