import Foundation
import Values
import XCTest
@testable import Detector

/// Post-processing with several classes (as COCO models have), on a tiny 2x2 anchor grid.
final class PostprocessorTests: XCTestCase {
    /// One 2x2 layer with the lowest-layer reduction: 3 anchors per cell, 12 in all.
    var anchors: Anchors!
    let classes = 3

    override func setUpWithError() throws {
        anchors = try Anchors(settings: ModelSettings(), gridSizes: [(2, 2)], perCell: [3], inputHeight: 300, inputWidth: 300)
    }

    func makePost(_ settings: ModelSettings = ModelSettings()) -> Postprocessor {
        Postprocessor(anchors: anchors, classesWithBackground: classes + 1, settings: settings, labels: .coco)
    }

    /// Encodings that decode anchor `a` to the box of anchor `target`.
    func encode(_ a: Int, as target: Int, into encodings: inout [Float]) {
        let from = anchors.centerSize[a], to = anchors.centerSize[target]
        encodings[a * 4] = (to[0] - from[0]) / from[2] * 10
        encodings[a * 4 + 1] = (to[1] - from[1]) / from[3] * 10
        encodings[a * 4 + 2] = log(to[2] / from[2]) * 5
        encodings[a * 4 + 3] = log(to[3] / from[3]) * 5
    }

    func run(_ post: inout Postprocessor, _ encodings: [Float], _ logits: [Float], threshold: Float) -> [Detection] {
        encodings.withUnsafeBufferPointer { e in
            logits.withUnsafeBufferPointer { l in post.detections(boxEncodings: e.baseAddress!, logits: l.baseAddress!, threshold: threshold) }
        }
    }

    func logit(_ p: Float) -> Float { log(p / (1 - p)) }

    func testNonMaxSuppressionIsPerClass() {
        var encodings = [Float](repeating: 0, count: 12 * 4)
        var logits = [Float](repeating: -20, count: 12 * (classes + 1))
        // Anchor 1 decodes onto anchor 0's box: same class -> the weaker is suppressed.
        encode(1, as: 0, into: &encodings)
        logits[0 * 4 + 1] = logit(0.9)   // person at anchor 0
        logits[1 * 4 + 1] = logit(0.8)   // person, same box: suppressed
        // A car on the very same box is another class: kept.
        logits[1 * 4 + 3] = logit(0.7)
        // A bicycle in the next cell.
        logits[3 * 4 + 2] = logit(0.6)
        var post = makePost()
        let found = run(&post, encodings, logits, threshold: 0.5)
        XCTAssertEqual(found.map(\.classID), [1, 3, 2])
        XCTAssertEqual(found.map(\.label), ["person", "car", "bicycle"])
        XCTAssertEqual(found.map(\.score), [0.9, 0.7, 0.6].map { Float($0) }, accuracy: 1e-6)
        guard found.count == 3 else { return }
        XCTAssertEqual(found[0].xmin, found[1].xmin, accuracy: 1e-5, "the car sits on the person's box")
        XCTAssertEqual(found[0].ymax, found[1].ymax, accuracy: 1e-5)
    }

    func testThresholdAndCaps() {
        let encodings = [Float](repeating: 0, count: 12 * 4)
        var logits = [Float](repeating: -20, count: 12 * (classes + 1))
        // Every anchor scores for class 2, from 0.95 down: the 12 default boxes overlap little.
        for a in 0..<12 { logits[a * 4 + 2] = logit(0.95 - Float(a) * 0.05) }
        var post = makePost()
        let all = run(&post, encodings, logits, threshold: 0.5)
        XCTAssertTrue(all.allSatisfy { $0.score >= 0.5 && $0.classID == 2 })
        XCTAssertEqual(all.map(\.score), all.map(\.score).sorted(by: >))
        var capped = ModelSettings()
        capped.maxDetections = 3
        var small = makePost(capped)
        XCTAssertEqual(run(&small, encodings, logits, threshold: 0).count, 3, "max_detections")
        var perClass = ModelSettings()
        perClass.maxDetectionsPerClass = 2
        var limited = makePost(perClass)
        XCTAssertEqual(run(&limited, encodings, logits, threshold: 0).count, 2, "max_detections_per_class")
    }

    func testBoxesAreClippedToTheImage() {
        var encodings = [Float](repeating: 0, count: 12 * 4)
        var logits = [Float](repeating: -20, count: 12 * (classes + 1))
        encodings[2] = 5 * log(30)  // anchor 0's height x30: spills over the top and bottom
        logits[1] = logit(0.9)
        var post = makePost()
        let found = run(&post, encodings, logits, threshold: 0.5)
        XCTAssertEqual(found.map(\.ymin), [0])
        XCTAssertEqual(found.map(\.ymax), [1])
    }
}

private func XCTAssertEqual(_ a: [Float], _ b: [Float], accuracy: Float, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}
