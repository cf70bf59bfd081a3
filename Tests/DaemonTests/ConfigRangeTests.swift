import Daemon
import XCTest

/// Every number in the config has a documented range (docs/CONFIG.md); the edges pass and one step beyond
/// each edge is refused with its key and line.
final class ConfigRangeTests: XCTestCase {
    func testWorkers() {
        assertRange(top: "workers", valid: ["0", "1", "256"], invalid: ["-1", "257", "9223372036854775807", "99999999999999999999"])
    }

    func testQueueLimit() {
        assertRange(top: "socket:\n  queue_limit", key: "socket.queue_limit", line: 2,
                    valid: ["1", "100000"], invalid: ["0", "100001", "9223372036854775807"])
    }

    func testStuckSeconds() throws {
        assertRange(top: "socket:\n  stuck_seconds", key: "socket.stuck_seconds", line: 2,
                    valid: ["1", "86400"], invalid: ["0.5", "86401", "-1"])
        XCTAssertEqual(try DaemonConfig.parse("sources: [{ name: a, input: b }]", origin: "d").socket.stuckAfter, .seconds(30))
        XCTAssertEqual(try DaemonConfig.parse("socket: { stuck_seconds: 600 }\nsources: [{ name: a, input: b }]", origin: "d")
                       .socket.stuckAfter, .seconds(600))
    }

    func testHeartbeatSeconds() {
        assertRange(top: "heartbeat_seconds", valid: ["0", "0.1", "86400"], invalid: ["1e-9", "0.05", "86401", "-1"])
    }

    func testReconnectMaxSeconds() throws {
        assertRange(top: "reconnect_max_seconds", valid: ["1", "3600"], invalid: ["0", "0.5", "3601"])
        XCTAssertEqual(try DaemonConfig.parse("sources: [{ name: a, input: b }]", origin: "d").reconnectMax, .seconds(30))
        XCTAssertEqual(try DaemonConfig.parse("reconnect_max_seconds: 5\nsources: [{ name: a, input: b }]", origin: "d").reconnectMax,
                       .seconds(5))
    }

    func testHTTPRanges() {
        assertRange(top: "http:\n  preview_fps", key: "http.preview_fps", line: 2, valid: ["0.1", "30"], invalid: ["0.09", "31", "0"])
        assertRange(top: "http:\n  max_stream_clients", key: "http.max_stream_clients", line: 2, valid: ["1", "1000"], invalid: ["0", "1001"])
        assertRange(top: "http:\n  stale_seconds", key: "http.stale_seconds", line: 2, valid: ["0.5", "3600"], invalid: ["0.4", "3601"])
        assertRange(top: "http:\n  snapshots", key: "http.snapshots", line: 2, valid: ["0", "1000"], invalid: ["-1", "1001", "2.5"])
    }

    func testRingCapacity() {
        assertRange(source: "ring_capacity", valid: ["1", "256"], invalid: ["0", "257", "9223372036854775807"])
    }

    func testIOTimeout() {
        assertRange(source: "io_timeout", valid: ["0.1", "3600"], invalid: ["1e-9", "0.09", "3601", "0"])
    }

    func testFrameRates() {
        for key in ["fps_limit", "capture_fps"] {
            assertRange(source: key, valid: ["0.001", "1000"], invalid: ["0.0009", "1001", "0", "-5"])
        }
        assertRange(source: "realtime_fps", extra: "realtime: true", valid: ["0.001", "1000"], invalid: ["0.0009", "1001"])
    }

    func testCaptureSize() {
        for key in ["width", "height"] {
            assertRange(source: key, valid: ["1", "16384"], invalid: ["0", "16385", "9223372036854775807"])
        }
    }

    func testScores() {
        assertRange(top: "threshold", valid: ["0", "1", "0.5"], invalid: ["-0.01", "1.01"])
        assertRange(top: "thresholds:\n  person", key: "thresholds.person", line: 2, valid: ["0", "1"], invalid: ["-0.1", "1.5"])
        assertRange(source: "threshold", valid: ["0", "1"], invalid: ["-0.1", "2"])
    }

    // MARK: Helpers

    /// A top-level key (or a nested one written as "parent:\n  key"), on line 1 unless `line` says otherwise.
    private func assertRange(top key: String, key keyPath: String? = nil, line: Int = 1, valid: [String], invalid: [String],
                             file: StaticString = #filePath, line testLine: UInt = #line) {
        let sources = "\nsources: [{ name: a, input: /dev/video0 }]"
        check(keyPath ?? key, line: line, valid: valid, invalid: invalid, file: file, testLine: testLine) { "\(key): \($0)" + sources }
    }

    /// A key of `sources[0]`, written on line 5.
    private func assertRange(source key: String, extra: String = "realtime: false", valid: [String], invalid: [String],
                             file: StaticString = #filePath, line testLine: UInt = #line) {
        check("sources[0].\(key)", line: 5, valid: valid, invalid: invalid, file: file, testLine: testLine) {
            "sources:\n  - name: a\n    input: /srv/a.mp4\n    \(extra)\n    \(key): \($0)\n"
        }
    }

    private func check(_ keyPath: String, line: Int, valid: [String], invalid: [String], file: StaticString, testLine: UInt,
                       yaml: (String) -> String) {
        for value in valid {
            XCTAssertNoThrow(try DaemonConfig.parse(yaml(value), origin: "r.yaml"), "\(keyPath): \(value) is in range",
                             file: file, line: testLine)
        }
        for value in invalid {
            do {
                _ = try DaemonConfig.parse(yaml(value), origin: "r.yaml")
                XCTFail("\(keyPath): \(value) was accepted", file: file, line: testLine)
            } catch {
                XCTAssertEqual(error.problems.count, 1, "\(error)", file: file, line: testLine)
                let problem = error.problems.first
                XCTAssertEqual(problem?.keyPath, keyPath, "\(error)", file: file, line: testLine)
                XCTAssertEqual(problem?.line, line, "\(error)", file: file, line: testLine)
                XCTAssertTrue(problem?.message.contains("must be") ?? false || problem?.message.contains("too large") ?? false,
                              "\(error)", file: file, line: testLine)
            }
        }
    }
}
