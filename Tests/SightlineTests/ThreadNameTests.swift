import Foundation
import TestSupport
import XCTest

/// The names `top -H`, `ps -L` and perf show for the daemon's threads: what the kernel holds in
/// /proc/<pid>/task/<tid>/comm, read from the real daemon on real video.
final class ThreadNameTests: XCTestCase {
    var scratch: DaemonScratch!

    override func setUpWithError() throws { scratch = try DaemonScratch() }
    override func tearDown() { scratch?.remove() }

    /// The names the kernel holds for `pid`'s threads (threads that end while they are read are skipped).
    func threadNames(of pid: Int32) -> [String] {
        let tasks = "/proc/\(pid)/task"
        let tids = (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? []
        return tids.compactMap { tid in
            (try? String(contentsOfFile: "\(tasks)/\(tid)/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines)
        }
    }

    func testTheDaemonsThreadsCarryTheirNames() throws {
        try scratch.writeConfig("""
        workers: 2
        socket: { path: \(scratch.socketPath), mode: "0600" }
        http: { listen: "127.0.0.1:\(freeLoopbackPort())", snapshots: 10 }
        sources:
          - { name: walk, input: "\(TestPaths.media("vtest.avi"))", realtime: true }
        """)
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        let first = subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }
        XCTAssertNotNil(first.match, "the daemon detects: \(daemon.stderr)")
        // Threads name themselves as they start: poll until all have (a guard of minutes only catches names that never come).
        let expected: Set = ["sl-worker-0", "sl-worker-1", "sl-capture-0", "sl-sink", "sl-supervise", "sl-signals",
                             "sl-reload", "sl-preview", "sl-snapshots"]
        var names = Set(threadNames(of: daemon.process.processIdentifier))
        let deadline = Date().addingTimeInterval(120)
        while !expected.isSubset(of: names), Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            names = Set(threadNames(of: daemon.process.processIdentifier))
        }
        XCTAssertEqual(expected.subtracting(names), [], "threads without their names; the kernel shows \(names.sorted())")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
    }
}
