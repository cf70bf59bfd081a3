import Foundation
import Sink
import XCTest

final class OrderedSinkTests: XCTestCase {
    static func record(_ source: String, frame: Int) -> DetectionRecord {
        DetectionRecord(source: source, frame: frame, seq: 0, pts: nil, time: Date(), captureTime: Date(), width: 1, height: 1,
                        latencyMs: 0, inferMs: 0, dropped: 0, detections: [])
    }

    func testRecordsLeaveInOrderPerSourceWhateverOrderTheyFinishIn() {
        let emitted = EmittedRecords()
        let sink = OrderedSink<String> { emitted.append($0) }
        let count = 2000
        // Out-of-order completion from 4 threads across two sources.
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for order in stride(from: worker, to: count, by: 4).reversed() {
                for lane in 0..<2 {
                    sink.submit(Self.record("s\(lane)", frame: order), lane: lane, order: order, capturedAt: .now)
                }
            }
        }
        for lane in 0..<2 {
            let mine = emitted.records.filter { $0.source == "s\(lane)" }
            XCTAssertEqual(mine.map(\.frame), Array(0..<count))
            XCTAssertEqual(mine.map(\.seq), Array(0..<count))
        }
    }

    func testASkippedFrameDoesNotHoldBackTheRestAndIsReportedAsDropped() {
        let emitted = EmittedRecords()
        let sink = OrderedSink<String> { emitted.append($0) }
        sink.submit(Self.record("a", frame: 2), lane: 0, order: 2, capturedAt: .now)
        sink.submit(Self.record("a", frame: 0), lane: 0, order: 0, capturedAt: .now)
        XCTAssertEqual(emitted.records.map(\.frame), [0])
        sink.skip(lane: 0, order: 1, droppedBefore: 3)
        XCTAssertEqual(emitted.records.map(\.frame), [0, 2])
        XCTAssertEqual(emitted.records.map(\.seq), [0, 1], "seq stays contiguous")
        XCTAssertEqual(emitted.records.map(\.dropped), [0, 4], "the skipped frame and the 3 dropped before it")
    }

    func testAFinishedLaneIsForgottenOnlyAfterItsLastRecord() {
        let emitted = EmittedRecords()
        let finished = Locked<[String]>([])
        let sink = OrderedSink<String>(emit: { emitted.append($0) }, laneFinished: { lane, ending in
            finished.value += ["lane \(lane) \(ending) after \(emitted.records.count) records"]
        })
        sink.submit(Self.record("a", frame: 1), lane: 0, order: 1, capturedAt: .now)
        sink.finish(lane: 0, total: 2, ending: "end of file")
        XCTAssertEqual(finished.value, [], "record 0 is still out")
        sink.submit(Self.record("a", frame: 0), lane: 0, order: 0, capturedAt: .now)
        XCTAssertEqual(emitted.records.map(\.frame), [0, 1])
        XCTAssertEqual(finished.value, ["lane 0 end of file after 2 records"], "the lane's ending follows its last record")
        // A new lane index starts from order 0 again; a forgotten lane leaves nothing behind.
        sink.submit(Self.record("b", frame: 0), lane: 1, order: 0, capturedAt: .now)
        XCTAssertEqual(emitted.records.map(\.source), ["a", "a", "b"])
    }

    func testLatencyIsStampedAtEmit() throws {
        let emitted = EmittedRecords()
        let sink = OrderedSink<String> { emitted.append($0) }
        sink.submit(Self.record("a", frame: 0), lane: 0, order: 0, capturedAt: .now - .milliseconds(250))
        let record = try XCTUnwrap(emitted.records.first)
        XCTAssertGreaterThanOrEqual(record.latencyMs, 250)
        XCTAssertLessThan(record.latencyMs, 60_000, "milliseconds, not microseconds")
    }

    func testJSONLineSchema() throws {
        var r = Self.record("cam \"1\"", frame: 3)
        r.pts = 0.3
        r.detections = [.init(classID: 1, label: "person", score: 0.75, xmin: 0.1, ymin: 0.2, xmax: 0.3, ymax: 0.4)]
        let line = r.jsonLine()
        XCTAssertTrue(line.hasSuffix("}\n"))
        XCTAssertEqual(line.filter { $0 == "\n" }.count, 1)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(object["source"] as? String, "cam \"1\"")
        XCTAssertEqual(object["pts"] as? Double, 0.3)
        let detection = try XCTUnwrap((object["detections"] as? [[String: Any]])?.first)
        XCTAssertEqual(detection["label"] as? String, "person")
        XCTAssertEqual((detection["box"] as? [String: Double])?["ymax"] ?? 0, 0.4, accuracy: 1e-6)
        XCTAssertTrue(line.hasPrefix(#"{"type":"detections","source":"#), "keys keep their documented order")
    }
}

final class EmittedRecords: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [DetectionRecord] = []
    func append(_ r: DetectionRecord) { lock.withLock { stored.append(r) } }
    var records: [DetectionRecord] { lock.withLock { stored } }
}
