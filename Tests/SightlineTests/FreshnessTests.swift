import Foundation
import TestSupport
import XCTest

/// A live source faster than the pool can detect: the freshest frames are detected, the rest are dropped
/// and counted, and latency stays bounded instead of growing with a queue.
final class FreshnessTests: XCTestCase {
    func testOverloadedLiveSourceStaysFreshAndCountsDrops() throws {
        let fps = 1000.0
        let video = TestPaths.media("vtest.avi")
        let result = try runProcess(TestPaths.sightlineBinary, ["detect", "--threads", "2", "--realtime", "--fps", "\(Int(fps))", video])
        XCTAssertEqual(result.status, 0, result.stderr)
        let records = try result.stdoutLines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let infer = records.map { $0["infer_ms"] as! Double }.sorted()
        let latency = records.map { $0["latency_ms"] as! Double }.sorted()
        let dropped = records.map { $0["dropped"] as! Int }.reduce(0, +)
        let oneInference = infer[infer.count / 2]
        let poolRate = 2 * 1000 / oneInference
        XCTAssertGreaterThanOrEqual(fps, 4 * poolRate, "the source must run at 4x what the pool can detect (pool: \(poolRate) fps)")
        // Every frame is accounted for: detected, or dropped and reported in the next record.
        let lastFrame = try XCTUnwrap(records.last?["frame"] as? Int)
        XCTAssertEqual(records.count + dropped, lastFrame + 1, "records + reported drops = frames captured")
        XCTAssertGreaterThan(dropped, 0)
        XCTAssertEqual(records.map { $0["seq"] as! Int }, Array(0..<records.count), "records stay in order")
        let p99 = latency[min(latency.count - 1, Int(Double(latency.count) * 0.99))]
        XCTAssertLessThanOrEqual(p99, 3 * oneInference, "p99 capture-to-emit \(p99) ms vs one inference \(oneInference) ms")
        print("freshness: \(records.count) detected, \(dropped) dropped, one inference \(oneInference) ms, p99 latency \(p99) ms")
    }
}
