import Foundation
import TestSupport
import XCTest

/// Subscribers cannot take the descriptors a source needs: with a limit of 64 open files and 150 clients connected,
/// the daemon serves at most half as many subscribers, tells the rest why it closes them, and its source keeps reopening.
final class DescriptorLimitTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    var dir: URL!

    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testManyIdleClientsUnderALowFileLimitLeaveTheSourceReopening() throws {
        let clip = dir.appendingPathComponent("clip.mkv").path
        let made = try runProcess("/usr/bin/ffmpeg", ["-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1",
                                                      "-c:v", "mpeg4", clip])
        XCTAssertEqual(made.status, 0, made.stderr)
        let socketPath = dir.appendingPathComponent("s.sock").path, configPath = dir.appendingPathComponent("sightline.yaml").path
        // A one-second file played in real time ends every second and is reopened: a new descriptor each time.
        try """
        workers: 1
        socket: { path: \(socketPath), mode: "0600" }
        sources:
          - name: clip
            input: \(clip)
            realtime: true
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
        // `ulimit -n` sets the hard limit too, so the daemon cannot raise it.
        let daemon = try BackgroundProcess("/bin/bash", ["-c", "ulimit -n 64; exec \"$0\" run --config \"$1\"", binary, configPath])
        let watcher = try LineSubscriber(path: socketPath, timeout: 60)
        XCTAssertEqual(watcher.next(timeout: 60)?["type"] as? String, "hello")
        let idle = try (0..<149).map { _ in try LineSubscriber(path: socketPath) }
        // The last ones are over the cap: one `error` record, then the end.
        let refusal = try XCTUnwrap(idle.last?.next(timeout: 30), "the last client is told why it is closed; stderr: \(daemon.stderr)")
        XCTAssertEqual(refusal["type"] as? String, "error")
        XCTAssertEqual(refusal["reason"] as? String, "too many subscribers")
        XCTAssertLessThanOrEqual(refusal["limit"] as? Int ?? .max, 32)
        // Meanwhile the source keeps ending and reopening.
        var reopened = 0
        let seen = watcher.until(timeout: 60) { record in
            if record["type"] as? String == "source_up" { reopened += 1 }
            return reopened >= 3
        }
        XCTAssertNotNil(seen.match, "the source reopened 3 times with 150 clients connected; stderr: \(daemon.stderr)")
        XCTAssertFalse(daemon.stderr.contains("Too many open files"), daemon.stderr)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
    }
}
