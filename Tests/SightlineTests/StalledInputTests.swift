import Foundation
import TestSupport
import XCTest

/// Inputs that stop without ending: a FIFO whose writer stalls, timestamps that jump by an hour.
/// Nothing may wait on them for good: not SIGTERM, not a reload, not `--realtime` pacing.
final class StalledInputTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    var dir: URL!
    /// The writing end of the FIFO, held open (and silent) until the test ends.
    private let writer = WriterBox()

    override func setUpWithError() throws {
        dir = try TestPaths.temporaryDirectory()
        // The writer may still be writing when the daemon drops the FIFO: an EPIPE, not a signal, for the test process.
        signal(SIGPIPE, SIG_IGN)
    }
    override func tearDownWithError() throws {
        // A writer still waiting for a reader is let through, then everything closes.
        let unblock = open(fifoPath, O_RDONLY | O_NONBLOCK)
        writer.close()
        if unblock >= 0 { close(unblock) }
        try? FileManager.default.removeItem(at: dir)
    }

    var socketPath: String { dir.appendingPathComponent("s.sock").path }
    var configPath: String { dir.appendingPathComponent("sightline.yaml").path }
    var fifoPath: String { dir.appendingPathComponent("stalled.fifo").path }

    /// A config with the FIFO source (unless `withFIFO` is false) and a paced file; `threshold` tells reloads apart.
    func writeConfig(withFIFO: Bool, threshold: Double = 0.5) throws {
        let fifo = """
          - name: stalled
            input: \(fifoPath)
            policy: latest        # capture never waits for the detector, so it soon waits on the FIFO
            io_timeout: 600
        """
        try """
        threshold: \(threshold)
        workers: 1
        socket: { path: \(socketPath), mode: "0600" }
        sources:
          - name: walk
            input: \(TestPaths.media("vtest.avi"))
            realtime: true
        \(withFIFO ? fifo : "")
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Writes the first 300 KB of a video into the FIFO, once the daemon opens it, and then nothing.
    func feedFIFOAndStall() throws {
        let video = try Data(contentsOf: URL(fileURLWithPath: TestPaths.media("vtest.avi"))).prefix(300_000)
        let path = fifoPath, writer = self.writer
        Thread.detachNewThread {
            guard let handle = FileHandle(forWritingAtPath: path) else { return }  // blocks until the daemon opens it
            writer.hold(handle)
            try? handle.write(contentsOf: video)
        }
    }

    /// Starts the daemon and waits until the FIFO source has delivered a detection, and a second more: its reader
    /// has taken all there was and is blocked.
    func startWithStalledFIFO() throws -> (BackgroundProcess, LineSubscriber) {
        XCTAssertEqual(mkfifo(fifoPath, 0o600), 0)
        try writeConfig(withFIFO: true)
        let daemon = try BackgroundProcess(binary, ["run", "--config", configPath])
        let subscriber = try LineSubscriber(path: socketPath)
        // The FIFO's few detections all come soon after its data: it is written only once this subscriber is in.
        XCTAssertEqual(subscriber.next(timeout: 120)?["type"] as? String, "hello", daemon.stderr)
        try feedFIFOAndStall()
        let fromFIFO = subscriber.until(timeout: 60) { $0["type"] as? String == "detections" && $0["source"] as? String == "stalled" }
        XCTAssertNotNil(fromFIFO.match, "the FIFO's frames are detected before it stalls; stderr: \(daemon.stderr)")
        Thread.sleep(forTimeInterval: 1)
        return (daemon, subscriber)
    }

    func testSIGTERMExitsWhileAFIFOStalls() throws {
        let (daemon, _) = try startWithStalledFIFO()
        daemon.signal(SIGTERM)
        // Well inside the FIFO's io_timeout (600 s): a daemon that waited on the stalled read, rather than ending it,
        // would still be running. How fast it exits is a matter of load, not asserted.
        XCTAssertEqual(daemon.wait(timeout: 180), 0, daemon.stderr)
    }

    func testReloadRemovingAStalledFIFOCompletesAndTheNextReloadWorks() throws {
        let (daemon, _) = try startWithStalledFIFO()
        func reloads() -> Int { daemon.stderr.components(separatedBy: "reloaded").count - 1 }
        func waitForReloads(_ count: Int) -> Bool {
            let deadline = Date().addingTimeInterval(120)
            while reloads() < count && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            return reloads() >= count
        }
        try writeConfig(withFIFO: false)
        daemon.signal(SIGHUP)
        XCTAssertTrue(waitForReloads(1), "the reload removing the stalled FIFO completed; stderr: \(daemon.stderr)")
        try writeConfig(withFIFO: false, threshold: 0.6)
        daemon.signal(SIGHUP)
        XCTAssertTrue(waitForReloads(2), "the next reload completed too; stderr: \(daemon.stderr)")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
    }

    /// A deleted socket file leaves nobody able to connect, until SIGHUP makes it anew.
    func testSIGHUPRestoresADeletedSocketFile() throws {
        try writeConfig(withFIFO: false)
        let daemon = try BackgroundProcess(binary, ["run", "--config", configPath])
        let before = try LineSubscriber(path: socketPath)
        XCTAssertEqual(before.next()?["type"] as? String, "hello")
        XCTAssertEqual(unlink(socketPath), 0)
        daemon.signal(SIGHUP)
        let after = try LineSubscriber(path: socketPath, timeout: 30)
        XCTAssertEqual(after.next()?["type"] as? String, "hello")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
    }

    /// `--realtime` on a file whose timestamps jump by an hour halfway: every frame comes out (within a generous
    /// timeout that bounds a hang; pacing sleeping through the gap would take an hour).
    func testRealtimePacingDoesNotSleepThroughATimestampJump() throws {
        let video = dir.appendingPathComponent("jump.mkv").path
        let made = try runProcess("/usr/bin/ffmpeg", ["-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1",
                                                      "-vf", "setpts='if(gte(N,5),PTS+36000,PTS)'", "-c:v", "mpeg4", video])
        XCTAssertEqual(made.status, 0, made.stderr)
        let result = try runProcess(binary, ["detect", "--realtime", "--policy", "lossless", video])
        XCTAssertEqual(result.status, 0, result.stderr)
        let pts = result.stdout.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }.compactMap { $0["pts"] as? Double }
        XCTAssertEqual(pts.count, 10, result.stdout)
        XCTAssertGreaterThan(pts.last ?? 0, 3600)
    }
}

private final class WriterBox: @unchecked Sendable {
    private let lock = NSLock()
    private var handle: FileHandle?
    private var closed = false
    func hold(_ handle: FileHandle) {
        let late = lock.withLock { () -> Bool in
            self.handle = handle
            return closed
        }
        if late { try? handle.close() }
    }
    func close() {
        let handle = lock.withLock { () -> FileHandle? in
            closed = true
            return self.handle
        }
        try? handle?.close()
    }
}
