import Foundation
import TestSupport
import XCTest

/// What a subscriber sees across daemon restarts and when it connects late: `tail` reconnecting, `hello` with
/// each source's state.
final class SubscriberTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    var scratch: DaemonScratch!

    override func setUpWithError() throws { scratch = try DaemonScratch() }
    override func tearDown() { scratch?.remove() }

    /// `walk` loops the sample video as a live source; `cam` is a camera that is not there.
    func startDaemon() throws -> BackgroundProcess {
        try scratch.writeConfig("""
        workers: 1
        socket: { path: \(scratch.socketPath), mode: "0600" }
        sources:
          - { name: walk, input: \(TestPaths.media("vtest.avi")), realtime: true }
          - { name: cam, input: /dev/video-sightline-missing }
        """)
        return try scratch.startDaemon()
    }

    func testALateSubscribersHelloSaysWhichSourcesAreUp() throws {
        let daemon = try startDaemon()
        let first = try LineSubscriber(path: scratch.socketPath)
        XCTAssertNotNil(first.until(timeout: 120) { $0["type"] as? String == "detections" && $0["source"] as? String == "walk" }.match,
                        daemon.stderr)
        let late = try LineSubscriber(path: scratch.socketPath)
        let hello = try XCTUnwrap(late.next(timeout: 60))
        XCTAssertEqual(hello["type"] as? String, "hello")
        XCTAssertEqual(hello["sources"] as? [String], ["walk", "cam"])
        XCTAssertEqual(hello["source_states"] as? [String: String], ["walk": "up", "cam": "down"])
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
        // Not the journal: plain lines that start with their level, no <N> prefixes.
        XCTAssertTrue(daemon.stderr.contains("info: listening"), daemon.stderr)
        XCTAssertFalse(daemon.stderr.contains("<6>"), daemon.stderr)
    }

    func testTailReconnectsAcrossADaemonRestart() throws {
        var daemon = try startDaemon()
        _ = try LineSubscriber(path: scratch.socketPath)  // the socket is up
        let tail = try BackgroundProcess(binary, ["tail", "--raw", scratch.socketPath])
        func hellos() -> Int { tail.stdout.split(separator: "\n").filter { $0.contains(#""type":"hello""#) }.count }
        XCTAssertTrue(waitUntil(timeout: 120) { hellos() == 1 }, "tail connected: \(tail.stdout) \(tail.stderr)")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
        XCTAssertTrue(waitUntil(timeout: 120) { tail.stderr.contains("reconnecting") }, tail.stderr)
        XCTAssertNil(tail.wait(timeout: 1), "tail keeps running while the daemon is away")
        daemon = try startDaemon()
        XCTAssertTrue(waitUntil(timeout: 120) { hellos() == 2 }, "tail reconnected: \(tail.stderr)")
        // Detections from the new daemon (after the second hello), so that it is running, not starting, when stopped.
        XCTAssertTrue(waitUntil(timeout: 120) {
            tail.stdout.components(separatedBy: #""type":"hello""#).last?.contains(#""type":"detections""#) ?? false
        })
        XCTAssertTrue(tail.stderr.contains("connected again"), tail.stderr)
        tail.signal(SIGTERM)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
    }

    func testTailOnceExitsWhenTheDaemonGoes() throws {
        let daemon = try startDaemon()
        _ = try LineSubscriber(path: scratch.socketPath)
        let tail = try BackgroundProcess(binary, ["tail", "--once", scratch.socketPath])
        XCTAssertTrue(waitUntil(timeout: 120) { tail.stdout.contains("connected: schema 1") }, tail.stdout + tail.stderr)
        XCTAssertTrue(tail.stdout.contains("walk (up)") || tail.stdout.contains("walk (down)"), tail.stdout)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
        XCTAssertEqual(tail.wait(timeout: 120), 1, "--once: the connection ended, so does tail")
        XCTAssertTrue(tail.stderr.contains("the daemon closed the connection"), tail.stderr)
        let missing = try runProcess(binary, ["tail", "--once", scratch.dir.appendingPathComponent("none.sock").path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("cannot connect"), missing.stderr)
    }

    private func waitUntil(timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return condition()
    }
}
