import Foundation
import TestSupport
import XCTest

/// `sightline detect --track` on real video: the real binary, model and vtest.avi.
final class DetectTrackingTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    static let timingFields: Set<String> = ["time", "capture_time", "latency_ms", "infer_ms", "first_seen", "last_seen"]

    func records(_ result: ProcessResult) throws -> [[String: Any]] {
        try result.stdoutLines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    func canonical(_ records: [[String: Any]]) throws -> [String] {
        try records.map { record in
            var record = record
            for key in Self.timingFields { record[key] = nil }
            return String(decoding: try JSONSerialization.data(withJSONObject: record, options: .sortedKeys), as: UTF8.self)
        }
    }

    func testTracksAndEventsAreIdenticalWhateverTheThreadCountAndEveryStartEnds() throws {
        let video = TestPaths.media("vtest.avi")
        let one = try runProcess(binary, ["detect", "--track", "--threads", "1", video])
        let two = try runProcess(binary, ["detect", "--track", "--threads", "2", video])
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssertEqual(two.status, 0, two.stderr)
        let records = try records(one)
        XCTAssertEqual(try canonical(records), try canonical(try self.records(two)), "tracks differ between 1 and 2 worker threads")

        var open: [Int: String] = [:]  // track id -> label
        var started = Set<Int>(), ended = Set<Int>()
        var presence = 0, presenceChanges = 0, rawChanges = 0, previousRaw = 0, frames = 0
        var endReasons: [String: Int] = [:]
        for record in records {
            switch record["type"] as? String {
            case "object_start":
                let id = try XCTUnwrap(record["track_id"] as? Int)
                XCTAssertTrue(started.insert(id).inserted, "track \(id) started twice")
                XCTAssertEqual(id, started.count, "ids are given in order from 1")
                open[id] = record["label"] as? String
            case "object_end":
                let id = try XCTUnwrap(record["track_id"] as? Int)
                XCTAssertNotNil(open.removeValue(forKey: id), "track \(id) ended without being open")
                XCTAssertTrue(ended.insert(id).inserted)
                endReasons[record["reason"] as? String ?? "?", default: 0] += 1
                XCTAssertGreaterThanOrEqual(try XCTUnwrap(record["duration_s"] as? Double), 0)
            case "presence":
                XCTAssertEqual(record["label"] as? String, "person")
                let count = try XCTUnwrap(record["count"] as? Int)
                XCTAssertNotEqual(count, presence, "presence is sent only when the count changes")
                XCTAssertEqual(count, open.count, "presence counts the open tracks")
                presence = count
                presenceChanges += 1
            case "detections":
                let detections = try XCTUnwrap(record["detections"] as? [[String: Any]])
                for d in detections {
                    if let id = d["track_id"] as? Int { XCTAssertNotNil(open[id], "frame \(frames): track \(id) is not open") }
                }
                if detections.count != previousRaw { rawChanges += 1 }
                previousRaw = detections.count
                XCTAssertEqual(record["frame"] as? Int, frames)
                frames += 1
            default:
                XCTFail("unexpected record \(record)")
            }
        }
        XCTAssertEqual(frames, 795, "every frame still has its record")
        XCTAssertTrue(open.isEmpty, "every object_start has its object_end by the end of the file: \(open)")
        XCTAssertEqual(started, ended)
        XCTAssertGreaterThan(started.count, 5, "vtest.avi shows many people passing")
        XCTAssertGreaterThan(endReasons["end_of_file"] ?? 0, 0, "people still in view when the file ends")
        XCTAssertGreaterThan(endReasons["max_age"] ?? 0, 0, "people leaving during the video")
        XCTAssertEqual(presence, 0)
        XCTAssertLessThan(presenceChanges * 4, rawChanges, "presence changes far less often than the raw per-frame count")
        print("vtest.avi: \(started.count) tracks, person count changes: raw \(rawChanges), presence \(presenceChanges); ends \(endReasons)")
    }
}
