import Foundation
import TestSupport
import XCTest

/// A network stream that stalls and then delivers what it held in one burst: the frames from the backlog must
/// not be reported as fresh (their `capture_time` is when they were captured, so `latency_ms` shows their age).
final class StallTests: XCTestCase {
    /// Relays `ffmpeg -re` over HTTP, holding everything back from 3 s to 7 s after its first data, then sending it at once.
    static let relay = """
        import socket, subprocess, sys, time
        port, video = int(sys.argv[1]), sys.argv[2]
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        print("listening", flush=True)
        conn, _ = server.accept()
        conn.recv(65536)
        # Chunked, so that the end of the stream is an end and not a connection lost early.
        conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: video/mp2t\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n")
        send = lambda data: conn.sendall(b"%x\\r\\n%s\\r\\n" % (len(data), data)) if data else None
        ff = subprocess.Popen(["ffmpeg", "-v", "error", "-nostdin", "-re", "-i", video, "-t", "10", "-c:v", "mpeg4",
                               "-q:v", "4", "-f", "mpegts", "pipe:1"], stdout=subprocess.PIPE)
        # The stall is timed from the first data, not from starting ffmpeg, which may take seconds on a loaded machine.
        start, held = None, b""
        while True:
            data = ff.stdout.read1(65536)
            if not data:
                break
            start = start or time.time()
            if 3 <= time.time() - start < 7:
                held += data
                continue
            send(held + data)
            held = b""
        send(held)
        conn.sendall(b"0\\r\\n\\r\\n")
        conn.shutdown(socket.SHUT_WR)  # a clean end of stream; close() with unread input would reset it
        conn.settimeout(30)
        while conn.recv(65536):
            pass
        conn.close()
        """

    func testFramesHeldDuringAStallCarryTheirAge() throws {
        let python = try XCTUnwrap(["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = dir.appendingPathComponent("relay.py")
        try Self.relay.write(to: script, atomically: true, encoding: .utf8)
        let port = freeLoopbackPort()
        let relay = try BackgroundProcess(python, [script.path, "\(port)", TestPaths.media("vtest.avi")])
        XCTAssertTrue(eventually(timeout: 120) { relay.stdout.contains("listening") }, relay.stderr)
        // Lossless, so that every frame of the burst gets a record rather than only the newest.
        let result = try runProcess(TestPaths.sightlineBinary, ["detect", "--threads", "2", "--policy", "lossless",
                                                                "http://127.0.0.1:\(port)/cam.ts"])
        XCTAssertEqual(result.status, 0, result.stderr + relay.stderr)
        let records = result.stdoutLines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertGreaterThanOrEqual(records.count, 80, "nearly all of the 10 s at 10 fps were detected: \(records.count)")
        let latencies = records.compactMap { $0["latency_ms"] as? Double }
        // Without the stream's clock the held frames would be stamped when decoded (latency of one inference).
        XCTAssertGreaterThan(latencies.max() ?? 0, 2500, "the oldest frames of the burst show their age")
        // Each frame is stamped when the stream captured it, whenever it was decoded or detected: capture times
        // keep the spacing of the stream's timestamps through the burst, so `capture_time - pts` stays put (without
        // the stream's clock the 40 held frames would share one decode moment, and it would fall by 4 s). The clock
        // settles on the frames that came soonest, so the first 1.5 s, which a loaded machine may start late, are left
        // out; how fresh the last frames are again is a matter of speed, not asserted.
        let stamps = records.compactMap { r -> (pts: Double, capture: Date)? in
            guard let pts = r["pts"] as? Double, let text = r["capture_time"] as? String,
                  let capture = ISO8601DateFormatter.withFractionalSeconds.date(from: text) else { return nil }
            return (pts, capture)
        }
        XCTAssertEqual(stamps.count, records.count, "every record has a pts and a capture_time")
        if let first = stamps.first {
            let settled = stamps.filter { $0.pts >= first.pts + 1.5 }
            XCTAssertGreaterThanOrEqual(settled.count, 60, "records from 1.5 s on")
            let offsets = settled.map { $0.capture.timeIntervalSince(first.capture) - ($0.pts - first.pts) }
            let spread = (offsets.max() ?? 0) - (offsets.min() ?? 0)
            XCTAssertLessThan(spread, 1.0, "capture times follow the stream's timestamps (capture_time - pts spreads over \(spread) s)")
        }
    }
}
