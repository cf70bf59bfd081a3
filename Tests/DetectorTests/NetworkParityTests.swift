import Foundation
import TestSupport
import XCTest
@testable import Detector

/// The oneDNN network against TensorFlow running the same frozen graph (fixtures: scripts/make_fixtures.py).
final class NetworkParityTests: XCTestCase {
    static func fixture(_ name: String) throws -> [String: Any] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    static let model = Result { try Model(path: TestPaths.model) }

    func testRawOutputsMatchTensorFlowWithin1e4() throws {
        let fixture = try Self.fixture("tensor_parity")
        let expectedBoxes = try XCTUnwrap(fixture["box_encodings"] as? [Double])
        let expectedLogits = try XCTUnwrap(fixture["class_logits"] as? [Double])
        let detector = try Self.model.get().makeDetector()
        let input = detector.input
        XCTAssertEqual(input.count, 300 * 300 * 3)
        for i in 0..<input.count {
            input[i] = Float((i * 7919 + 13) % 2001) / Float(1000) - Float(1)
        }
        try detector.forward()
        let (boxes, logits) = detector.rawOutputs
        XCTAssertEqual(boxes.count, expectedBoxes.count)
        XCTAssertEqual(logits.count, expectedLogits.count)
        let boxError = zip(boxes, expectedBoxes).map { abs(Double($0) - $1) }.max() ?? .infinity
        let logitError = zip(logits, expectedLogits).map { abs(Double($0) - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(boxError, 1e-4, "box encodings differ from TensorFlow by up to \(boxError)")
        XCTAssertLessThanOrEqual(logitError, 1e-4, "class logits differ from TensorFlow by up to \(logitError)")
    }

    func testAnchorsMatchTheGraphsOwn() throws {
        let fixture = try Self.fixture("anchors")
        let corners = try XCTUnwrap(fixture["anchors"] as? [[Double]])
        let anchors = try Self.model.get().anchors.centerSize
        XCTAssertEqual(anchors.count, corners.count)
        for (i, (mine, c)) in zip(anchors, corners).enumerated() {
            guard c.count == 4 else { return XCTFail("fixture anchor \(i) is not 4 corners: \(c)") }
            let (ymin, xmin, ymax, xmax) = (Float(c[0]), Float(c[1]), Float(c[2]), Float(c[3]))
            let h = ymax - ymin, w = xmax - xmin
            let expected = SIMD4<Float>(ymin + h / 2, xmin + w / 2, h, w)
            XCTAssertLessThanOrEqual((mine - expected).replacing(with: -(mine - expected), where: mine .< expected).max(), 1e-6, "anchor \(i): \(mine) vs \(expected)")
        }
    }

    func testStripFusionComputesWhatTheWholeLayersCompute() throws {
        let model = try Self.model.get()
        XCTAssertGreaterThanOrEqual(model.network.stripPlans.count, 3, "the 150- and 75-pixel blocks run in strips")
        let fused = try InferenceEngine(network: model.network)
        let whole = try InferenceEngine(network: CompiledNetwork(spec: model.network.spec, fuse: false))
        XCTAssertTrue(whole.network.stripPlans.isEmpty)
        let count = model.network.spec.input.elements
        for i in 0..<count {
            let value = Float((i * 104_729 + 7) % 2001) / 1000 - 1
            fused.input[i] = value
            whole.input[i] = value
        }
        try fused.run()
        try whole.run()
        let boxes = zip(fused.boxEncodings, whole.boxEncodings).map { abs($0 - $1) }.max() ?? .infinity
        let logits = zip(fused.classLogits, whole.classLogits).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(max(boxes, logits), 1e-5, "fused and whole-layer outputs differ")
    }

    func testEveryLayerRunsAnOptimizedKernel() throws {
        let model = try Self.model.get()
        XCTAssertEqual(Set(model.implementations.map(\.layer)).count, 88, "33 depthwise + 54 pointwise + the first convolution")
        XCTAssertEqual(model.referenceKernels, [], "layers on oneDNN reference kernels")
    }

    func testModelShape() throws {
        let model = try Self.model.get()
        XCTAssertEqual(model.inputWidth, 300)
        XCTAssertEqual(model.inputHeight, 300)
        XCTAssertEqual(model.classCount, 1)
        XCTAssertEqual(model.anchorCount, 1917)
        XCTAssertEqual(model.labels.name(for: 1), "person")
        XCTAssertEqual((model.multiplyAccumulates + 500_000) / 1_000_000, 617, "617 M multiply-accumulates per frame")
    }
}
