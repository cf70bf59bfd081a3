import Foundation
import TestSupport
import XCTest

/// Tracking in the running daemon: the real binary, socket, model, video, network stream and signals.
final class TrackingDaemonTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    var dir: URL!

    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    var socketPath: String { dir.appendingPathComponent("s.sock").path }
    var configPath: String { dir.appendingPathComponent("sightline.yaml").path }
    static let eventTypes: Set<String> = ["object_start", "object_end", "presence"]

    func startDaemon(sources: String) throws -> BackgroundProcess {
        try """
        workers: 2
        heartbeat_seconds: 0
        reconnect_max_seconds: 2
        socket: { path: \(socketPath), mode: "0600" }
        sources:
        \(sources)
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
        return try BackgroundProcess(binary, ["run", "--config", configPath])
    }

    func serveStream(port: UInt16) throws -> BackgroundProcess {
        let ffmpeg = try XCTUnwrap(["/usr/bin/ffmpeg", "/usr/local/bin/ffmpeg"].first { FileManager.default.isExecutableFile(atPath: $0) })
        return try BackgroundProcess(ffmpeg, ["-v", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", TestPaths.media("vtest.avi"),
                                              "-c:v", "mpeg4", "-q:v", "4", "-f", "mpegts", "-listen", "1",
                                              "http://127.0.0.1:\(port)/cam.ts"])
    }

    func type(_ record: [String: Any]) -> String { record["type"] as? String ?? "?" }

    /// Checks a stream of records of one source: each track starts once and ends once, ends only open tracks,
    /// and presence always counts the open ones. Returns the tracks still open.
    @discardableResult
    func checkTracks(_ records: [[String: Any]], _ label: String = "") -> (open: Set<Int>, started: Int, ends: [String]) {
        var open = Set<Int>(), started = 0, ends: [String] = []
        for record in records {
            switch type(record) {
            case "object_start":
                let id = record["track_id"] as? Int ?? -1
                XCTAssertTrue(open.insert(id).inserted, "\(label): track \(id) started twice")
                started += 1
            case "object_end":
                let id = record["track_id"] as? Int ?? -1
                XCTAssertNotNil(open.remove(id), "\(label): track \(id) ended but was not open")
                ends.append(record["reason"] as? String ?? "?")
            case "presence":
                XCTAssertEqual(record["count"] as? Int, open.count, "\(label): presence counts the open tracks")
            default: break
            }
        }
        return (open, started, ends)
    }

    func testAnEventsOnlySubscriberGetsEveryStartAndEndAndNoDetections() throws {
        // The file appears only once both subscribers are ready, so they see the whole run.
        let video = dir.appendingPathComponent("walk.avi")
        let daemon = try startDaemon(sources: "  - name: walk\n    input: \(video.path)")
        let everything = try LineSubscriber(path: socketPath), events = try LineSubscriber(path: socketPath)
        XCTAssertEqual(everything.next().map(type), "hello")
        XCTAssertEqual(events.next().map(type), "hello")
        XCTAssertEqual(send(#"{"subscribe": {"types": ["object_start", "object_end", "presence"]}}"#, to: events), true)
        let subscribed = try XCTUnwrap(events.until(timeout: 60) { self.type($0) == "subscribed" }.match)
        XCTAssertEqual(subscribed["types"] as? [String], ["object_start", "object_end", "presence"])
        XCTAssertNil(subscribed["sources"] as? [String], "all sources")
        try FileManager.default.copyItem(atPath: TestPaths.media("vtest.avi"), toPath: dir.appendingPathComponent("copy.avi").path)
        try FileManager.default.moveItem(at: dir.appendingPathComponent("copy.avi"), to: video)

        // The events-only subscriber reads along as records arrive: one that read nothing while its records waited
        // would be cut off as too slow once the run outlasts the daemon's patience (as it does on a loaded machine).
        var all: [[String: Any]] = [], allLines: [String] = [], received: [String] = []
        func readEvents() {
            while let record = events.nextIfArrived() {
                XCTAssertTrue(Self.eventTypes.contains(type(record)), "only events: got \(type(record)) \(events.lastLine)")
                received.append(events.lastLine)
            }
        }
        // However long the run takes: only a stream that stops for minutes is a hang.
        let finished = everything.until(idle: 300) { record in
            all.append(record)
            allLines.append(everything.lastLine)
            readEvents()
            return self.type(record) == "source_down" && (record["reason"] as? String) == "end of file"
        }
        XCTAssertNotNil(finished.match, "the file ran to its end: \(Set(all.map(type)))")
        let eventLines = zip(all, allLines).filter { Self.eventTypes.contains(type($0.0)) }.map(\.1)
        XCTAssertEqual(all.filter { type($0) == "detections" }.count, 795, "every frame's record")
        let tracks = checkTracks(all, "everything")
        XCTAssertTrue(tracks.open.isEmpty, "every object_start has its object_end before source_down: \(tracks.open)")
        XCTAssertGreaterThan(tracks.started, 5)
        XCTAssertTrue(tracks.ends.contains("end_of_file"), "\(tracks.ends)")
        XCTAssertEqual(Set(tracks.ends), ["max_age", "end_of_file"])
        let lastEnd = try XCTUnwrap(all.lastIndex { type($0) == "object_end" })
        XCTAssertLessThan(lastEnd, try XCTUnwrap(all.lastIndex { type($0) == "source_down" }), "the ends come before source_down")

        readEvents()
        while received.count < eventLines.count, let record = events.next(timeout: 300) {
            XCTAssertTrue(Self.eventTypes.contains(type(record)), "only events: got \(type(record))")
            received.append(events.lastLine)
        }
        XCTAssertEqual(received, eventLines, "the events-only subscriber got every event, as everyone did")
        XCTAssertNil(events.next(timeout: 1), "and nothing else")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
    }

    func testAStreamKilledMidTrackEndsItsTracksBeforeSourceDown() throws {
        let port = freeLoopbackPort()
        var server: BackgroundProcess? = try serveStream(port: port)
        Thread.sleep(forTimeInterval: 0.5)
        let daemon = try startDaemon(sources: "  - name: net\n    input: http://127.0.0.1:\(port)/cam.ts")
        let subscriber = try LineSubscriber(path: socketPath)
        let started = subscriber.until(timeout: 60) { self.type($0) == "object_start" }
        XCTAssertNotNil(started.match, "a track started: \(Set(started.seen.map(type)))")
        server = nil  // killed mid-track
        let down = subscriber.until(timeout: 60) { self.type($0) == "source_down" }
        XCTAssertNotNil(down.match, "source_down after the stream died")
        // From the first object_start on: the tracks still open when the stream died all end, as source_down, before it.
        let run = [started.match].compactMap { $0 } + down.seen
        let tracks = checkTracks(run, "net")
        XCTAssertTrue(tracks.open.isEmpty, "tracks left open at source_down: \(tracks.open)")
        XCTAssertTrue(tracks.ends.contains("source_down"), "\(tracks.ends)")
        XCTAssertEqual(Set(tracks.ends).subtracting(["max_age"]), ["source_down"])
        let ends = down.seen.filter { type($0) == "object_end" && $0["reason"] as? String == "source_down" }
        XCTAssertTrue(ends.allSatisfy { $0["source"] as? String == "net" && ($0["duration_s"] as? Double ?? -1) >= 0 })
        XCTAssertEqual(down.seen.last.map(type), "presence", "presence 0 comes last, right before source_down")
        XCTAssertEqual(down.seen.last?["count"] as? Int, 0)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
        _ = server
    }

    func testSIGTERMEndsOpenTracksBeforeExit() throws {
        let daemon = try startDaemon(sources: "  - name: walk\n    input: \(TestPaths.media("vtest.avi"))\n    realtime: true")
        let subscriber = try LineSubscriber(path: socketPath)
        // `tail --events` asks for the events only, as a user would run it.
        let tail = try BackgroundProcess(binary, ["tail", "--once", "--raw", "--events", socketPath])
        let started = subscriber.until(timeout: 60) { self.type($0) == "object_start" }
        XCTAssertNotNil(started.match, "a track started")
        let deadline = Date().addingTimeInterval(120)
        while !tail.stdout.contains(#""type":"subscribed""#), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        daemon.signal(SIGTERM)
        var after: [[String: Any]] = []
        while let record = subscriber.next(timeout: 30) { after.append(record) }
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
        XCTAssertEqual(tail.wait(timeout: 120), 1, "tail --once exits when the daemon goes: \(tail.stderr)")
        let tailed = tail.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(tailed.prefix(2).map(type), ["hello", "subscribed"], tail.stdout)
        XCTAssertTrue(tailed.dropFirst(2).allSatisfy { Self.eventTypes.contains(type($0)) }, "tail --events: only events: \(tail.stdout)")
        XCTAssertTrue(tailed.contains { type($0) == "object_end" && $0["reason"] as? String == "shutdown" }, tail.stdout)
        let tracks = checkTracks([started.match].compactMap { $0 } + after, "walk")
        XCTAssertTrue(tracks.open.isEmpty, "tracks left open at exit: \(tracks.open)")
        XCTAssertTrue(tracks.ends.contains("shutdown"), "\(tracks.ends)")
        XCTAssertEqual(after.last.map(type), "presence", "the last record: presence 0")
        XCTAssertEqual(after.last?["count"] as? Int, 0)
    }

    private func send(_ line: String, to subscriber: LineSubscriber) -> Bool {
        let bytes = Array((line + "\n").utf8)
        return bytes.withUnsafeBytes { write(subscriber.fd, $0.baseAddress, $0.count) } == bytes.count
    }
}
