import Capture
import Foundation
import TestSupport
import Values
import XCTest
@testable import Detector

/// bf16 and int8 against TensorFlow's f32 graph on real frames (fixtures: scripts/make_fixtures.py; int8 uses the
/// calibration file scripts/setup.sh makes from Megamind.avi, so none of these frames were calibrated on).
final class PrecisionTests: XCTestCase {
    static let bf16 = Result { try Model(path: TestPaths.model, precision: .bf16) }
    static let int8 = Result { try Model(path: TestPaths.model, precision: .int8) }

    /// Every fixture frame (frames.json and accuracy_frames.json) with TensorFlow's detections.
    static func tensorFlowFrames() throws -> [(name: String, pixels: PixelBuffer, detections: [Detection])] {
        var result: [(String, PixelBuffer, [Detection])] = []
        for fixture in ["frames", "accuracy_frames"] {
            let frames = try XCTUnwrap(NetworkParityTests.fixture(fixture)["frames"] as? [[String: Any]])
            let wanted = Dictionary(grouping: frames) { $0["media"] as? String ?? "" }
            for (media, entries) in wanted {
                let decoded = try FrameParityTests.decode(media, frames: Set(entries.compactMap { $0["frame"] as? Int }))
                for entry in entries {
                    let index = try XCTUnwrap(entry["frame"] as? Int)
                    let pixels = try XCTUnwrap(decoded[index], "\(media) frame \(index) not decoded")
                    let detections = try XCTUnwrap(entry["detections"] as? [[String: Any]]).map { d throws -> Detection in
                        let numbers: [Double] = try XCTUnwrap((d["box"] as? [Double]).flatMap { $0.count == 4 ? $0 : nil }, "a box is 4 numbers")
                        let box = numbers.map { Float($0) }
                        let classID = Int(try XCTUnwrap(d["class"] as? Double))
                        return Detection(classID: classID, label: "", score: Float(try XCTUnwrap(d["score"] as? Double)),
                                         xmin: box[1], ymin: box[0], xmax: box[3], ymax: box[2])
                    }
                    result.append(("\(media) frame \(index)", pixels, detections))
                }
            }
        }
        return result
    }

    func agreementWithTensorFlow(_ model: Model) throws -> DetectionAgreement {
        let detector = try model.makeDetector()
        var agreement = DetectionAgreement()
        for frame in try Self.tensorFlowFrames() {
            agreement.add(reference: frame.detections, candidate: try detector.detect(frame.pixels, threshold: 0))
        }
        return agreement
    }

    func assertAgreement(_ agreement: DetectionAgreement, medianScoreBudget: Float, _ what: String) {
        XCTAssertGreaterThanOrEqual(agreement.referenceCount, 100, "\(what): enough TensorFlow detections to judge by")
        XCTAssertGreaterThanOrEqual(agreement.keptFraction, 0.98, "\(what): \(agreement.summary)")
        XCTAssertLessThanOrEqual(agreement.extraFraction, 0.02, "\(what): \(agreement.summary)")
        XCTAssertLessThanOrEqual(agreement.medianScoreDifference, medianScoreBudget, "\(what): \(agreement.summary)")
        print("\(what) against TensorFlow f32: \(agreement.summary)")
    }

    func testBF16KeepsTensorFlowsDetections() throws {
        let model = try Self.bf16.get()
        XCTAssertEqual(model.precision.precision, .bf16)
        assertAgreement(try agreementWithTensorFlow(model), medianScoreBudget: 0.01, "bf16")
    }

    func testInt8KeepsTensorFlowsDetections() throws {
        let model = try Self.int8.get()
        XCTAssertEqual(model.precision.precision, .int8)
        assertAgreement(try agreementWithTensorFlow(model), medianScoreBudget: 0.02, "int8")
    }

    func testEveryPrecisionRunsOptimizedKernels() throws {
        for model in [try NetworkParityTests.model.get(), try Self.bf16.get(), try Self.int8.get()] {
            let name = model.precision.precision.rawValue
            XCTAssertEqual(Set(model.implementations.map(\.layer)).count, 88, name)
            XCTAssertEqual(model.referenceKernels, [], "\(name): layers on oneDNN reference kernels")
        }
    }

    func testStripsComputeWhatWholeLayersComputeInEveryPrecision() throws {
        for model in [try Self.bf16.get(), try Self.int8.get()] {
            let network = model.network
            XCTAssertGreaterThanOrEqual(network.stripPlans.count, 3)
            let whole = try CompiledNetwork(spec: network.spec, precision: network.precision,
                                            activationRanges: network.precision == .int8 ? try bundledRanges(network.spec) : nil, fuse: false)
            let fusedEngine = try InferenceEngine(network: network), wholeEngine = try InferenceEngine(network: whole)
            for i in 0..<network.spec.input.elements {
                let value = Float((i * 104_729 + 7) % 2001) / 1000 - 1
                fusedEngine.input[i] = value
                wholeEngine.input[i] = value
            }
            try fusedEngine.run()
            try wholeEngine.run()
            let largest = zip(fusedEngine.classLogits, wholeEngine.classLogits).map { abs($0 - $1) }.max() ?? .infinity
            // The same arithmetic per element; bf16 may sum a band's dot products in another order.
            XCTAssertLessThanOrEqual(largest, network.precision == .int8 ? 1e-4 : 0.05, "\(network.precision): strips differ from whole layers")
        }
    }

    private func bundledRanges(_ spec: NetworkSpec) throws -> [Float] {
        let path = Calibration.path(forModel: TestPaths.model)
        return try Calibration.load(path: path).activationRanges(for: spec, modelFingerprint: try Self.int8.get().fingerprint, path: path)
    }

    func testAutoPicksTheFastestPrecisionTheCPUAndModelAreReadyFor() {
        let full = CPUFeatures(vnni: true, bf16: true, isa: "avx512_core_bf16")
        let vnniOnly = CPUFeatures(vnni: true, bf16: false, isa: "avx512_core_vnni")
        let avx2 = CPUFeatures(vnni: false, bf16: false, isa: "avx2")
        XCTAssertEqual(PrecisionChoice.auto.select(cpu: full, calibrationFound: true, calibrationProblem: nil).precision, .int8)
        XCTAssertEqual(PrecisionChoice.auto.select(cpu: full, calibrationFound: false, calibrationProblem: nil).precision, .bf16)
        XCTAssertEqual(PrecisionChoice.auto.select(cpu: full, calibrationFound: true, calibrationProblem: "garbage").precision, .bf16)
        XCTAssertEqual(PrecisionChoice.auto.select(cpu: vnniOnly, calibrationFound: true, calibrationProblem: nil).precision, .int8)
        XCTAssertEqual(PrecisionChoice.auto.select(cpu: vnniOnly, calibrationFound: false, calibrationProblem: nil).precision, .f32)
        let capped = PrecisionChoice.auto.select(cpu: avx2, calibrationFound: true, calibrationProblem: nil)
        XCTAssertEqual(capped.precision, .f32)
        XCTAssertTrue(capped.reason.contains("avx2") && capped.reason.contains("VNNI"), capped.reason)
        XCTAssertEqual(PrecisionChoice.bf16.select(cpu: avx2, calibrationFound: false, calibrationProblem: nil).precision, .bf16)
    }

    func testAutoUsesTheBundledCalibration() throws {
        let model = try Model(path: TestPaths.model, precision: .auto)
        let cpu = CPUFeatures.current
        XCTAssertEqual(model.precision.precision, cpu.vnni ? .int8 : cpu.bf16 ? .bf16 : .f32, model.precision.reason)
        XCTAssertNil(model.calibrationWarning)
    }
}

/// A calibration file that is garbage, for another model or incomplete is an error naming it (int8), or a warning
/// and another precision (auto); never a crash or silently wrong output.
final class CalibrationFileTests: XCTestCase {
    /// A copy of the model in a fresh directory, with `calibration` written beside it.
    private func modelWith(calibration data: Data?) throws -> (model: String, calibration: String) {
        let dir = try TestPaths.temporaryDirectory()
        let model = dir.appendingPathComponent("model.pb").path
        try FileManager.default.copyItem(atPath: TestPaths.model, toPath: model)
        let calibration = Calibration.path(forModel: model)
        if let data { try data.write(to: URL(fileURLWithPath: calibration)) }
        return (model, calibration)
    }

    private func bundled() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Calibration.path(forModel: TestPaths.model)))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    private func json(_ object: [String: Any]) throws -> Data { try JSONSerialization.data(withJSONObject: object) }

    private func assertRefused(_ data: Data?, mentioning words: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let (model, calibration) = try modelWith(calibration: data)
        do {
            let loaded = try Model(path: model, precision: .int8)
            XCTFail("int8 loaded with a bad calibration file: \(loaded.precision)", file: file, line: line)
        } catch {
            let message = "\(error)"
            XCTAssertTrue(message.contains(calibration), "message does not name the file: \(message)", file: file, line: line)
            for word in words { XCTAssertTrue(message.contains(word), "'\(word)' missing from: \(message)", file: file, line: line) }
        }
        if data != nil {
            let auto = try Model(path: model, precision: .auto)
            XCTAssertNotEqual(auto.precision.precision, .int8, auto.precision.reason, file: file, line: line)
            let warning = try XCTUnwrap(auto.calibrationWarning, "auto gave no warning", file: file, line: line)
            XCTAssertTrue(warning.contains(calibration), warning, file: file, line: line)
        }
    }

    func testMissingFileIsNamedForInt8() throws {
        try assertRefused(nil, mentioning: ["no such file", "sightline calibrate"])
    }

    func testGarbageIsRefused() throws {
        try assertRefused(Data("\u{0}\u{1}not json at all".utf8), mentioning: ["not readable JSON"])
        try assertRefused(Data("[1, 2, 3]".utf8), mentioning: ["top level"])
        try assertRefused(try json(["hello": "world"]), mentioning: ["not a Sightline calibration file"])
    }

    func testAnotherModelsFileIsRefused() throws {
        var object = try bundled()
        object["model_fnv1a64"] = "0123456789abcdef"
        try assertRefused(try json(object), mentioning: ["another model"])
    }

    func testMissingAndBadRangesAreRefused() throws {
        var object = try bundled()
        var ranges = try XCTUnwrap(object["ranges"] as? [String: Any])
        let name = try XCTUnwrap(ranges.keys.sorted().first)
        ranges[name] = nil
        object["ranges"] = ranges
        try assertRefused(try json(object), mentioning: ["no range for '\(name)'"])
        for bad: Any in [-3, true, "big"] {
            ranges[name] = bad
            object["ranges"] = ranges
            try assertRefused(try json(object), mentioning: ["'\(name)'", "not a positive number"])
        }
        ranges[name] = 1
        ranges["Some/Other/Conv2D"] = 2
        object["ranges"] = ranges
        try assertRefused(try json(object), mentioning: ["Some/Other/Conv2D", "does not have"])
    }

    func testTheBundledFileLoadsAndRoundTrips() throws {
        let path = Calibration.path(forModel: TestPaths.model)
        let calibration = try Calibration.load(path: path)
        XCTAssertEqual(calibration.ranges.count, 76, "every convolution output but the 12 heads")
        let copy = try TestPaths.temporaryDirectory().appendingPathComponent("copy.json").path
        try calibration.write(to: copy)
        XCTAssertEqual(try Calibration.load(path: copy), calibration)
    }
}
