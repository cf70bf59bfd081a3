import Foundation
import TestSupport
import XCTest
@testable import Detector

/// A model that is missing, cut short, or not an SSD is refused with a message naming the problem.
final class ModelErrorTests: XCTestCase {
    private func loadError(_ path: String) -> String {
        do {
            _ = try Model(path: path)
            return "loaded"
        } catch {
            return "\(error)"
        }
    }

    private func writeTemp(_ data: Data, name: String) throws -> String {
        let url = try TestPaths.temporaryDirectory().appendingPathComponent(name)
        try data.write(to: url)
        return url.path
    }

    func testMissingModelIsNamed() {
        let message = loadError("/nonexistent/model.pb")
        XCTAssertTrue(message.contains("/nonexistent/model.pb") && message.contains("no such file"), message)
    }

    func testTruncatedModelIsMalformed() throws {
        let whole = try Data(contentsOf: URL(fileURLWithPath: TestPaths.model))
        let path = try writeTemp(whole.prefix(whole.count / 3), name: "truncated.pb")
        let message = loadError(path)
        XCTAssertTrue(message.contains(path) && message.contains("not a TensorFlow GraphDef"), message)
    }

    func testGarbageBytesAreRefused() throws {
        let path = try writeTemp(Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }), name: "garbage.pb")
        let message = loadError(path)
        XCTAssertTrue(message.contains(path), message)
    }

    func testNonSSDGraphNamesWhatIsMissing() throws {
        // A valid GraphDef holding one Placeholder node: field 1 (node) { name: "x", op: "Placeholder" }.
        let node: [UInt8] = [0x0a, 0x01, 0x78, 0x12, 0x0b] + Array("Placeholder".utf8)
        let path = try writeTemp(Data([0x0a, UInt8(node.count)] + node), name: "placeholder.pb")
        let message = loadError(path)
        XCTAssertTrue(message.contains("not an SSD MobileNetV2 detection graph"), message)
    }

    func testUnmappableOpIsNamedWithItsNode() throws {
        // The real graph with its first ReLU6 turned into Floor (same length, so the protobuf stays valid).
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: TestPaths.model)))
        let needle: [UInt8] = [0x12, 0x05] + Array("Relu6".utf8)
        let at = try XCTUnwrap(bytes.indices.dropLast(needle.count - 1).first { bytes[$0..<($0 + needle.count)].elementsEqual(needle) })
        bytes.replaceSubrange((at + 2)..<(at + 7), with: Array("Floor".utf8))
        let path = try writeTemp(Data(bytes), name: "floor.pb")
        let message = loadError(path)
        XCTAssertTrue(message.contains("(op Floor)") && message.contains("node 'FeatureExtractor/MobilenetV2/Conv/Relu6'"), message)
    }

    func testDirectoryIsNotAModel() throws {
        let dir = try TestPaths.temporaryDirectory().path
        XCTAssertTrue(loadError(dir).contains("is a directory"), loadError(dir))
    }

    func testSidecarOverridesAndLabels() throws {
        let dir = try TestPaths.temporaryDirectory()
        let sidecar = dir.appendingPathComponent("m.json")
        try Data(#"{"labels": ["pedestrian"], "nms_iou_threshold": 0.5}"#.utf8).write(to: sidecar)
        let settings = try ModelSettings.forModel(at: dir.appendingPathComponent("m.pb").path)
        XCTAssertEqual(settings.labels, [1: "pedestrian"])
        XCTAssertEqual(settings.nmsIoUThreshold, 0.5)
        try Data(#"{"nms_iou": 0.5}"#.utf8).write(to: sidecar)
        XCTAssertThrowsError(try ModelSettings.forModel(at: dir.appendingPathComponent("m.pb").path)) { error in
            XCTAssertTrue("\(error)".contains("unknown key 'nms_iou'"), "\(error)")
        }
    }

    func testLabelMapPbtxt() throws {
        let path = try writeTemp(Data("item {\n  name: \"/m/01g317\"\n  id: 1\n  display_name: \"person\"\n}\nitem {\n  id: 3\n  display_name: \"car\"\n}\n".utf8), name: "map.pbtxt")
        let labels = try Labels.load(path: path)
        XCTAssertEqual(labels.names, [1: "person", 3: "car"])
        XCTAssertEqual(labels.name(for: 2), "class_2")
    }
}
