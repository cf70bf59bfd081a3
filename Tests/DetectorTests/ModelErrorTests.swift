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
        XCTAssertTrue(message.contains("not an SSD or SSDLite MobileNetV1/V2 detection graph"), message)
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

    private static let seeds = TestPaths.repoRoot.appendingPathComponent("fuzz/corpus/model")

    /// Each reproducer of issue 8 (`fuzz/make_graph_seeds.py`: the tiny graph with one hostile field) is refused
    /// with one line naming the problem.
    func testHostileGraphsAreRefusedByName() {
        let expected = [
            "dtype-varint-2e63.pb": "tensor dtype 9223372036854775808 is out of range",
            "shape-product-overflow.pb": "tensor shape [4294967296, 4294967296, 16] has more than 67108864 elements",
            "content-size-overflow.pb": "has more than 67108864 elements",
            "broadcast-2e36.pb": "tensor shape [262144, 262144] has more than 67108864 elements",
            "identity-without-input.pb": "node 'Box/in' (op Identity) has 0 inputs, needs 1",
            "biasadd-one-input.pb": "node 'Box/BiasAdd' (op BiasAdd) has 1 inputs, needs 2",
            "conv2d-one-input.pb": "node 'Box/Conv2D' (op Conv2D) has 1 inputs, needs 2",
            "relu6-without-input.pb": "node 'Box/relu' (op Relu6) has 0 inputs, needs 1",
            "stride-zero.pb": "has strides [1, 0, 0, 1]",
            "channels-zero.pb": "has an empty filter [1, 1, 3, 0]",
            "negative-kernel.pb": "tensor shape [-1, 1, 3, 12] has a negative dimension",
            "too-few-floats.pb": "filter [1, 1, 3, 12] holds 35 values, not 36",
            "input-size-negative.pb": "input size -300x300",
            "input-size-zero.pb": "input size 0x0",
            "input-size-absurd.pb": "input size 100000x100000",
            "identity-feeds-itself.pb": "node 'Box/loop' depends on its own output",
            "hard-swish-near-input.pb": "node 'hs/add' (op AddV2) is not a layer of an SSD or SSDLite MobileNetV1/V2 network; supported are",
            "identity-cycle.pb": "depends on its own output",
        ]
        for (file, fragment) in expected {
            let message = loadError(Self.seeds.appendingPathComponent(file).path)
            XCTAssertTrue(message.contains(fragment), "\(file): \(message)")
            XCTAssertFalse(message.contains("\n"), "\(file): \(message)")
        }
    }

    /// The graph the reproducers start from loads, so each is refused for its one hostile field.
    func testTinyGraphLoads() {
        XCTAssertEqual(loadError(Self.seeds.appendingPathComponent("tiny-ssd.pb").path), "loaded")
    }

    /// A legal chain of 20,000 Identity nodes between the preprocessor and a head is resolved without recursion.
    func testLongIdentityChainLoads() throws {
        var bytes = [UInt8](try Data(contentsOf: Self.seeds.appendingPathComponent("tiny-ssd.pb")))
        func lengthDelimited(_ field: UInt8, _ payload: [UInt8]) -> [UInt8] {
            var length = [UInt8](), n = payload.count
            repeat {
                length.append(UInt8(n & 0x7f) | (n > 0x7f ? 0x80 : 0))
                n >>= 7
            } while n > 0
            return [field << 3 | 2] + length + payload
        }
        func node(_ name: String, _ op: String, _ input: String) -> [UInt8] {
            lengthDelimited(1, lengthDelimited(1, Array(name.utf8)) + lengthDelimited(2, Array(op.utf8)) + lengthDelimited(3, Array(input.utf8)))
        }
        let links = 20_000
        for i in 1...links { bytes += node("chain/\(i)", "Identity", i == 1 ? "Preprocessor/sub" : "chain/\(i - 1)") }
        // Redefine the box head's convolution (the last definition of a name wins) to read the end of the chain.
        let strides = lengthDelimited(5, lengthDelimited(1, Array("strides".utf8)) + lengthDelimited(2, lengthDelimited(1, [3 << 3 | 2, 4, 1, 1, 1, 1])))
        let padding = lengthDelimited(5, lengthDelimited(1, Array("padding".utf8)) + lengthDelimited(2, lengthDelimited(2, Array("SAME".utf8))))
        bytes += lengthDelimited(1, lengthDelimited(1, Array("Box/Conv2D".utf8)) + lengthDelimited(2, Array("Conv2D".utf8))
            + lengthDelimited(3, Array("chain/\(links)".utf8)) + lengthDelimited(3, Array("Box/weights".utf8)) + strides + padding)
        let path = try writeTemp(Data(bytes), name: "chain.pb")
        XCTAssertEqual(loadError(path), "loaded")
    }

    /// Every file of the fuzzers' corpora (seeds and anything the fuzzers kept) still gives an error or a model, never a crash.
    func testFuzzCorpusReplays() throws {
        let corpus = TestPaths.repoRoot.appendingPathComponent("fuzz/corpus")
        var replayed = 0
        for kind in ["model", "labels", "sidecar"] {
            let dir = corpus.appendingPathComponent(kind)
            for file in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() {
                let path = dir.appendingPathComponent(file).path
                switch kind {
                case "model": _ = loadError(path)
                case "labels": _ = try? Labels.load(path: path)
                default: _ = try? ModelSettings.load(sidecar: path)
                }
                replayed += 1
            }
        }
        XCTAssertGreaterThan(replayed, 20)
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

    func testSidecarNumbersAreTypedStrictly() throws {
        let dir = try TestPaths.temporaryDirectory()
        let sidecar = dir.appendingPathComponent("m.json").path
        try Data(#"{"min_scale": 0, "max_scale": 1, "aspect_ratios": [1, 0.5], "reduce_boxes_in_lowest_layer": false}"#.utf8)
            .write(to: URL(fileURLWithPath: sidecar))
        let settings = try ModelSettings.load(sidecar: sidecar)
        XCTAssertEqual(settings.minScale, 0)
        XCTAssertEqual(settings.maxScale, 1)
        XCTAssertEqual(settings.aspectRatios, [1, 0.5])
        XCTAssertFalse(settings.reduceBoxesInLowestLayer)
        for (json, fragment) in [(#"{"min_scale": true}"#, "'min_scale' must be a number"),
                                 (#"{"aspect_ratios": [1, false]}"#, "'aspect_ratios' must be a list of one or more numbers"),
                                 (#"{"reduce_boxes_in_lowest_layer": 1}"#, "'reduce_boxes_in_lowest_layer' must be true or false"),
                                 (#"{"max_detections": 2.5}"#, "'max_detections' must be a whole number"),
                                 (#"[1, 2]"#, "top level is not an object"),
                                 (#"{"min_scale": "#, "not readable JSON")] {
            try Data(json.utf8).write(to: URL(fileURLWithPath: sidecar))
            XCTAssertThrowsError(try ModelSettings.load(sidecar: sidecar), json) { error in
                XCTAssertTrue("\(error)".contains(fragment) && "\(error)".contains(sidecar), "\(json): \(error)")
            }
        }
    }

    func testCRLFLabelFileGivesOneLabelPerLine() throws {
        let path = try writeTemp(Data("person\r\nbicycle\r\ncar\r\n".utf8), name: "labels.txt")
        XCTAssertEqual(try Labels.load(path: path).names, [1: "person", 2: "bicycle", 3: "car"])
    }

    func testLabelMapPbtxt() throws {
        let path = try writeTemp(Data("item {\n  name: \"/m/01g317\"\n  id: 1\n  display_name: \"person\"\n}\nitem {\n  id: 3\n  display_name: \"car\"\n}\n".utf8), name: "map.pbtxt")
        let labels = try Labels.load(path: path)
        XCTAssertEqual(labels.names, [1: "person", 3: "car"])
        XCTAssertEqual(labels.name(for: 2), "class_2")
    }

    private func labelsError(_ text: String, name: String) throws -> String {
        let path = try writeTemp(Data(text.utf8), name: name)
        do {
            return "loaded \(try Labels.load(path: path).names)"
        } catch {
            return "\(error)".replacingOccurrences(of: path, with: name)
        }
    }

    /// As the TF Object Detection API's label_map_util validates a map: negative ids are refused, id 0 is the
    /// background's alone; an id given twice, which the API would settle silently (the first wins), and an empty
    /// name are refused too. Each message names the file and the line of the item.
    func testLabelMapRefusesNegativeDuplicateAndUnnamedIDs() throws {
        let cases: [(text: String, expected: String)] = [
            ("item {\n  id: 1\n  name: \"person\"\n}\nitem {\n  id: -1\n  name: \"car\"\n}\n",
             "cannot read labels map.pbtxt: line 5: id -1 is negative: class ids start at 1"),
            ("item { id: 1 name: \"person\" }\nitem { id: 2 name: \"car\" }\n\nitem { id: 1 name: \"bicycle\" }\n",
             "cannot read labels map.pbtxt: line 4: id 1 is given more than once (first at line 1)"),
            ("item { id: 0 name: \"person\" }\n", #"cannot read labels map.pbtxt: line 1: id 0 is the background's, not "person": class ids start at 1"#),
            ("item { id: 1 name: \"person\" }\r\nitem { id: 2 display_name: \"\" }\r\n", "cannot read labels map.pbtxt: line 2: item 2 has an empty name"),
        ]
        for (text, expected) in cases { XCTAssertEqual(try labelsError(text, name: "map.pbtxt"), expected, text) }
        let background = try writeTemp(Data("item { id: 0 name: \"background\" }\nitem { id: 1 name: \"person\" }\n".utf8), name: "map.pbtxt")
        XCTAssertEqual(try Labels.load(path: background).names, [1: "person"], "the background is not a class")
        // Either field may name the background, in either quotes; `name` is never read out of `display_name`.
        for text in ["item { id: 0 name: \"background\" display_name: \"Background\" }\nitem { id: 1 name: 'person' }\n",
                     "item { id: 0 display_name: 'background' }\nitem { display_name: \"person\" id: 1 }\n"] {
            XCTAssertEqual(try Labels.load(path: try writeTemp(Data(text.utf8), name: "map.pbtxt")).names, [1: "person"], text)
        }
        XCTAssertEqual(try labelsError("item { id: 0 display_name: \"person\" }\n", name: "map.pbtxt"),
                       #"cannot read labels map.pbtxt: line 1: id 0 is the background's, not "person": class ids start at 1"#)
    }

    /// Line N of a plain label file names class id N: a blank line before the last name would leave its id without
    /// a name (or, skipped, shift every later name to the wrong id), so it is refused. Blank lines at the end are not.
    func testPlainLabelFileRefusesABlankLineBeforeTheLastName() throws {
        XCTAssertEqual(try labelsError("person\nbicycle\n\ncar\n", name: "labels.txt"),
                       "cannot read labels labels.txt: line 3 is blank: line N names class id N, so every line up to the last "
                           + "needs a name (a label_map.pbtxt can leave ids out)")
        XCTAssertEqual(try labelsError("  \r\nperson\r\n", name: "labels.txt"),
                       "cannot read labels labels.txt: line 1 is blank: line N names class id N, so every line up to the last "
                           + "needs a name (a label_map.pbtxt can leave ids out)")
        XCTAssertEqual(try labelsError("person\nbicycle\n\n \n", name: "labels.txt"), "loaded \([1: "person", 2: "bicycle"])")
        XCTAssertEqual(try labelsError("\n\n", name: "labels.txt"), "cannot read labels labels.txt: no labels")
    }

    func testSidecarLabelsHaveNamesAndIDsFromOne() throws {
        let sidecar = try writeTemp(Data(), name: "m.json")
        for (json, fragment) in [(#"{"labels": ["person", ""]}"#, "'labels' has an empty name for class id 2"),
                                 (#"{"labels": {"1": "person", "-1": "car"}}"#, "label id '-1' is below 1: class ids start at 1"),
                                 (#"{"labels": {"3": " "}}"#, "'labels' has an empty name for class id 3")] {
            try Data(json.utf8).write(to: URL(fileURLWithPath: sidecar))
            XCTAssertThrowsError(try ModelSettings.load(sidecar: sidecar), json) { error in
                XCTAssertEqual("\(error)", "bad model settings file \(sidecar): \(fragment)", json)
            }
        }
    }
}
