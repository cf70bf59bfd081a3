import Foundation
import TestSupport
import XCTest

/// The daemon's configuration as a user meets it: secrets, `check` before `run`, `--socket`, per-source thresholds,
/// reloads and the reconnect cap; with the real binary, model, media, sockets and signals.
final class ServiceConfigTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    var scratch: DaemonScratch!

    override func setUpWithError() throws { scratch = try DaemonScratch() }
    override func tearDown() { scratch?.remove() }
    var walk: String { TestPaths.media("vtest.avi") }

    func stop(_ daemon: BackgroundProcess, file: StaticString = #filePath, line: UInt = #line) {
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr, file: file, line: line)
    }

    // MARK: check catches what run refuses

    func testCheckAndRunRefuseTheSameProblemsWithKeyAndLine() throws {
        let notAModel = scratch.dir.appendingPathComponent("notes.pb")
        try "not a graph".write(to: notAModel, atomically: true, encoding: .utf8)
        let sources = "sources: [{ name: a, input: \(walk) }]"
        let cases: [(yaml: String, expected: String)] = [
            ("labels: missing.txt\nsocket: { path: \(scratch.socketPath) }\n\(sources)",
             "sightline.yaml:1: labels: cannot read labels \(scratch.dir.path)/missing.txt: no such file"),
            ("socket: { path: \(scratch.socketPath), group: no-such-group-sightline }\n\(sources)",
             "sightline.yaml:1: socket.group: unknown group no-such-group-sightline"),
            ("socket: { path: \(scratch.socketPath) }\nmodel: notes.pb\n\(sources)",
             "sightline.yaml:2: model: cannot read model \(notAModel.path): malformed model: not a TensorFlow GraphDef"),
            ("socket:\n  path: \(scratch.dir.path)/missing/s.sock\n\(sources)",
             "sightline.yaml:2: socket.path: cannot create \(scratch.dir.path)/missing/s.sock: the directory \(scratch.dir.path)/missing does not exist"),
            ("socket: { path: \(scratch.socketPath) }\nthresholds:\n  persn: 0.6\n\(sources)",
             #"sightline.yaml:3: thresholds.persn: unknown label "persn" (did you mean "person"?)"#),
            ("model: /nonexistent/model.pb\nsocket: { path: \(scratch.socketPath) }\n\(sources)",
             "sightline.yaml:1: model: cannot read model /nonexistent/model.pb: no such file"),
        ]
        for (yaml, expected) in cases {
            try scratch.writeConfig(yaml)
            for command in ["check", "run"] {
                let result = try runProcess(binary, [command, "--config", scratch.configPath])
                XCTAssertEqual(result.status, 1, "\(command): \(yaml)\n\(result.stderr)")
                XCTAssertTrue(result.stderr.contains(scratch.dir.path + "/" + expected), "\(command): expected \(expected) in:\n\(result.stderr)")
                XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.socketPath), "\(command) started nothing")
            }
        }
    }

    /// Socket paths and listen addresses no socket can be created at: `check` names the key and line, and `run`
    /// refuses with the same words before it starts anything (not SwiftNIO's text, not "another process is listening").
    func testCheckAndRunRefuseSocketsThatCannotBeCreated() throws {
        let file = scratch.dir.appendingPathComponent("plain-file").path
        try "not a socket".write(toFile: file, atomically: true, encoding: .utf8)
        let sources = "sources: [{ name: a, input: \(walk) }]"
        let socket = "socket: { path: \(scratch.socketPath) }"
        let cases: [(yaml: String, expected: String)] = [
            ("socket:\n  path: \(scratch.dir.path)/sub/\n\(sources)",
             #"sightline.yaml:2: socket.path: ends with "/", which names a directory"#),
            ("socket:\n  path: .\n\(sources)", #"sightline.yaml:2: socket.path: ends with ".", which names a directory"#),
            ("socket:\n  path: \(scratch.dir.path)\n\(sources)",
             "sightline.yaml:2: socket.path: cannot create \(scratch.dir.path): the path exists and is a directory, not a socket"),
            ("socket:\n  path: \(file)\n\(sources)",
             "sightline.yaml:2: socket.path: cannot create \(file): the path exists and is a regular file, not a socket"),
            ("socket:\n  path: \(file)/s.sock\n\(sources)",
             "sightline.yaml:2: socket.path: cannot create \(file)/s.sock: \(file) is not a directory (it is a regular file)"),
            ("\(socket)\nhttp:\n  listen: \"unix:/\"\n\(sources)", #"sightline.yaml:3: http.listen: the Unix socket path ends with "/""#),
            ("\(socket)\nhttp:\n  listen: \"unix:\"\n\(sources)", "sightline.yaml:3: http.listen: a Unix socket needs an absolute path"),
            ("\(socket)\nhttp:\n  listen: \"[:0\"\n\(sources)", #"sightline.yaml:3: http.listen: unbalanced brackets in "[:0""#),
            ("\(socket)\nhttp:\n  listen: unix:\(file)\n\(sources)",
             "sightline.yaml:3: http.listen: cannot listen on unix:\(file): the path exists and is a regular file, not a socket"),
            ("\(socket)\nhttp:\n  listen: unix:\(scratch.socketPath)\n\(sources)",
             "sightline.yaml:3: http.listen: cannot listen on unix:\(scratch.socketPath): it is socket.path, the subscribers' socket"),
            ("\(socket)\nhttp:\n  listen: unix:\(scratch.dir.path)/missing/h.sock\n\(sources)",
             "sightline.yaml:3: http.listen: cannot listen on unix:\(scratch.dir.path)/missing/h.sock: the directory \(scratch.dir.path)/missing does not exist"),
        ]
        for (yaml, expected) in cases {
            try scratch.writeConfig(yaml)
            for command in ["check", "run"] {
                let result = try runProcess(binary, [command, "--config", scratch.configPath], timeout: 120)
                XCTAssertEqual(result.status, 1, "\(command): \(yaml)\n\(result.stderr)")
                XCTAssertTrue(result.stderr.contains(scratch.dir.path + "/" + expected), "\(command): expected \(expected) in:\n\(result.stderr)")
                XCTAssertFalse(result.stderr.contains("another process"), result.stderr)
                XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.socketPath), "\(command) started nothing")
            }
        }
        // The same words for `--socket`, which overrides the file's path.
        try scratch.writeConfig("\(socket)\n\(sources)")
        for command in ["check", "run"] {
            let result = try runProcess(binary, [command, "--config", scratch.configPath, "--socket", scratch.dir.path + "/sub/"], timeout: 120)
            XCTAssertEqual(result.status, 64, "\(command): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(#"--socket ends with "/", which names a directory"#), "\(command): \(result.stderr)")
        }
    }

    /// A second daemon given the HTTP socket of one still running refuses to start, as for the subscriber socket,
    /// rather than unlink the running one's socket file and take its place.
    func testRunRefusesAnHTTPSocketAnotherDaemonListensOn() throws {
        let http = scratch.dir.appendingPathComponent("h.sock").path
        try scratch.writeConfig("socket: { path: \(scratch.socketPath) }\nhttp: { listen: \"unix:\(http)\" }\nsources: [{ name: a, input: \(walk) }]")
        let first = try scratch.startDaemon()
        XCTAssertTrue(eventually(timeout: 120) { first.stderr.contains("HTTP listening") }, first.stderr)
        let second = try runProcess(binary, ["run", "--config", scratch.configPath, "--socket", scratch.dir.path + "/second.sock"], timeout: 120)
        XCTAssertEqual(second.status, 1, second.stderr)
        XCTAssertTrue(second.stderr.contains("cannot listen on unix:\(http): cannot create socket at \(http): another process is listening there"),
                      second.stderr)
        XCTAssertEqual(FileManager.default.fileExists(atPath: http), true, "the first daemon's socket is still there")
        stop(first)
    }

    func testShippedExampleChecksClean() throws {
        let example = TestPaths.repoRoot.appendingPathComponent("configs/sightline.yaml").path
        let result = try runProcess(binary, ["check", "--config", example, "--socket", scratch.socketPath])
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    func testRunsLabelFileErrorIsAboutLabels() throws {
        try scratch.writeConfig("labels: /nonexistent/labels.txt\nsocket: { path: \(scratch.socketPath) }\nsources: [{ name: a, input: \(walk) }]")
        let result = try runProcess(binary, ["run", "--config", scratch.configPath])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("cannot read labels /nonexistent/labels.txt: no such file"), result.stderr)
        XCTAssertFalse(result.stderr.contains("cannot read model"), result.stderr)
    }

    // MARK: Secrets

    func testPasswordsNeverReachSubscribersOrTheLog() throws {
        let ffmpeg = try XCTUnwrap(["/usr/bin/ffmpeg", "/usr/local/bin/ffmpeg"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let port = freeLoopbackPort(), closedPort = freeLoopbackPort()
        let server = try BackgroundProcess(ffmpeg, ["-v", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", walk, "-c:v", "mpeg4",
                                                   "-q:v", "4", "-f", "mpegts", "-listen", "1", "http://127.0.0.1:\(port)/cam.ts"])
        let credentials = scratch.dir.appendingPathComponent("credentials")
        try FileManager.default.createDirectory(at: credentials, withIntermediateDirectories: true)
        try "s3cret-from-credential\n".write(to: credentials.appendingPathComponent("yard-password"), atomically: true, encoding: .utf8)
        try scratch.writeConfig("""
            socket: { path: \(scratch.socketPath) }
            sources:
              - name: door
                input: "http://admin:${CAM_PASSWORD}@127.0.0.1:\(port)/cam.ts"
              - name: yard
                input: "http://admin:${credential:yard-password}@127.0.0.1:\(closedPort)/cam.ts"
            """)
        Thread.sleep(forTimeInterval: 0.5)
        let daemon = try scratch.startDaemon(environment: ["CAM_PASSWORD": "hunter2-from-env", "CREDENTIALS_DIRECTORY": credentials.path])
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        var lines: [String] = []
        var up: [String: Any]?, down: [String: Any]?, detected = false
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, up == nil || down == nil || !detected, let record = subscriber.next(timeout: 60) {
            lines.append(subscriber.lastLine)
            switch (record["type"] as? String, record["source"] as? String) {
            case ("source_up", "door"): up = record
            case ("source_down", "yard"): down = record
            case ("detections", "door"): detected = true
            default: break
            }
        }
        XCTAssertTrue(detected, "the stream opened with the substituted password: \(lines.suffix(5)) \(daemon.stderr)")
        XCTAssertEqual(up?["input"] as? String, "http://admin:***@127.0.0.1:\(port)/cam.ts")
        XCTAssertNotNil(down?["reason"] as? String, "the unreachable source is reported down")
        stop(daemon)
        for secret in ["hunter2", "s3cret"] {
            XCTAssertFalse(lines.contains { $0.contains(secret) }, "a record carries the password: \(lines.filter { $0.contains(secret) })")
            XCTAssertFalse(daemon.stderr.contains(secret), "the log carries the password:\n\(daemon.stderr)")
        }
        XCTAssertTrue(daemon.stderr.contains("admin:***@127.0.0.1:\(port)"), daemon.stderr)
        _ = server
    }

    func testCheckNeverPrintsAPassword() throws {
        try scratch.writeConfig("""
            socket: { path: \(scratch.socketPath) }
            sources:
              - name: door
                input: "rtsp://admin:${CAM_PASSWORD}@cam/stream"
                policy: "rtsp://admin:${CAM_PASSWORD}@cam/stream"
            """)
        let result = try runProcess(binary, ["check", "--config", scratch.configPath], environment: ["CAM_PASSWORD": "hunter2"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("sources[0].policy"), result.stderr)
        XCTAssertFalse((result.stdout + result.stderr).contains("hunter2"), result.stdout + result.stderr)
    }

    func testDetectKeepsPasswordsOutOfRecordsErrorsAndLibavsLog() throws {
        let ffmpeg = try XCTUnwrap(["/usr/bin/ffmpeg", "/usr/local/bin/ffmpeg"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let port = freeLoopbackPort(), closedPort = freeLoopbackPort()
        let server = try BackgroundProcess(ffmpeg, ["-v", "error", "-nostdin", "-re", "-i", walk, "-t", "2", "-c:v", "mpeg4",
                                                   "-q:v", "4", "-f", "mpegts", "-listen", "1", "http://127.0.0.1:\(port)/cam.ts"])
        // The server may still be starting: a refused connection is retried (it does not use up its one client).
        var served = try runProcess(binary, ["detect", "http://admin:hunter2@127.0.0.1:\(port)/cam.ts"])
        let deadline = Date().addingTimeInterval(120)
        while served.stderr.contains("Connection refused") && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            served = try runProcess(binary, ["detect", "http://admin:hunter2@127.0.0.1:\(port)/cam.ts"])
        }
        let sources = Set(served.stdoutLines.compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["source"] as? String
        })
        XCTAssertEqual(sources, ["http://admin:***@127.0.0.1:\(port)/cam.ts"], served.stderr)
        XCTAssertFalse(served.stdout.contains("hunter2") || served.stderr.contains("hunter2"), served.stderr)
        _ = server

        let refused = try runProcess(binary, ["detect", "rtsp://admin:hunter2@127.0.0.1:\(closedPort)/cam"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("rtsp://admin:***@127.0.0.1:\(closedPort)/cam"), refused.stderr)
        XCTAssertFalse(refused.stderr.contains("hunter2"), refused.stderr)

        // libav's own messages, shown for debugging, quote URLs too (the HLS demuxer: "Opening '...' for reading").
        let playlist = scratch.dir.appendingPathComponent("cam.m3u8")
        try "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nhttp://admin:hunter2@127.0.0.1:\(closedPort)/seg.ts\n#EXT-X-ENDLIST\n"
            .write(to: playlist, atomically: true, encoding: .utf8)
        let debug = try runProcess(binary, ["detect", playlist.path], environment: ["SIGHTLINE_FFMPEG_LOG": "1"])
        XCTAssertTrue(debug.stderr.contains("'http://admin:***@127.0.0.1:\(closedPort)/seg.ts'"), debug.stderr)
        XCTAssertFalse(debug.stderr.contains("hunter2"), debug.stderr)
    }

    // MARK: --socket

    func testRunSocketReplacesTheConfiguredPath() throws {
        // The service's config names /run/sightline, which only systemd creates; --socket runs it by hand.
        try scratch.writeConfig("socket: { path: \(scratch.dir.path)/not-created/sightline.sock }\nsources: [{ name: walk, input: \(walk), realtime: true }]")
        let refused = try runProcess(binary, ["run", "--config", scratch.configPath])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("socket.path: cannot create \(scratch.dir.path)/not-created/sightline.sock: the directory \(scratch.dir.path)/not-created does not exist"), refused.stderr)
        let check = try runProcess(binary, ["check", "--config", scratch.configPath, "--socket", scratch.socketPath])
        XCTAssertEqual(check.status, 0, check.stderr)
        let daemon = try scratch.startDaemon(["--socket", scratch.socketPath])
        let subscriber = try LineSubscriber(path: scratch.socketPath, timeout: 30)
        XCTAssertEqual(subscriber.next(timeout: 60)?["type"] as? String, "hello", daemon.stderr)
        XCTAssertNotNil(subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match)
        // A reload keeps the socket given on the command line rather than asking for a restart to "change" it.
        daemon.signal(SIGHUP)
        let reload = try XCTUnwrap(subscriber.until(timeout: 120) { $0["type"] as? String == "reload" }.match, daemon.stderr)
        XCTAssertEqual(reload["needs_restart"] as? [String], [])
        stop(daemon)
    }

    // MARK: Thresholds

    func testEachSourceUsesItsOwnThreshold() throws {
        try scratch.writeConfig("""
            threshold: 0.5
            workers: 2
            socket: { path: \(scratch.socketPath) }
            sources:
              - { name: strict, input: \(walk), realtime: true, realtime_fps: 50, threshold: 0.95 }
              - { name: loose, input: \(walk), realtime: true, realtime_fps: 50, thresholds: { person: 0.2 } }
            """)
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        var scores: [String: [Double]] = [:]
        _ = subscriber.until(timeout: 120) { record in
            guard record["type"] as? String == "detections", let source = record["source"] as? String else { return false }
            scores[source, default: []] += (record["detections"] as? [[String: Any]] ?? []).compactMap { $0["score"] as? Double }
            return (scores["loose"] ?? []).contains { $0 < 0.5 } && (scores["strict"]?.count ?? 0) >= 3
        }
        stop(daemon)
        XCTAssertTrue((scores["strict"] ?? []).allSatisfy { $0 >= 0.95 }, "strict: \(scores["strict"] ?? [])")
        XCTAssertGreaterThanOrEqual(scores["strict"]?.count ?? 0, 3, "strict sees confident people")
        XCTAssertTrue((scores["loose"] ?? []).contains { $0 < 0.5 }, "loose reports below the top-level threshold: \(scores["loose"] ?? [])")
    }

    // MARK: Reload

    func testReloadRecordSaysWhatChangedAndWhy() throws {
        func config(threshold: Double, fps: Int, extra: String = "") -> String {
            """
            threshold: \(threshold)
            workers: 2
            socket: { path: \(scratch.socketPath) }
            sources:
              - { name: walk, input: \(walk), realtime: true, fps_limit: \(fps) }
            \(extra)
            """
        }
        try scratch.writeConfig(config(threshold: 0.5, fps: 10))
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        XCTAssertNotNil(subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match)

        try scratch.writeConfig(config(threshold: 0.4, fps: 5, extra: "  - { name: still, input: \(TestPaths.media("messi5.jpg")) }"))
        daemon.signal(SIGHUP)
        let applied = try XCTUnwrap(subscriber.until(timeout: 120) { $0["type"] as? String == "reload" }.match, daemon.stderr)
        XCTAssertEqual(applied["status"] as? String, "applied")
        XCTAssertEqual(applied["changed"] as? [String], ["threshold", "sources.walk.fps_limit"])
        XCTAssertEqual(applied["added"] as? [String], ["still"])
        XCTAssertEqual(applied["removed"] as? [String], [])
        XCTAssertEqual((applied["restarted"] as? [[String: String]]) ?? [], [["source": "walk", "reason": "fps_limit changed"]])
        XCTAssertEqual(applied["needs_restart"] as? [String], [])
        XCTAssertNotNil(subscriber.until(timeout: 120) { $0["type"] as? String == "source_up" && $0["source"] as? String == "walk" }.match,
                        "the restarted source comes back")
        // The log says it too (stderr is collected asynchronously: give it a moment).
        let logged = Date().addingTimeInterval(120)
        while !daemon.stderr.contains("restarted=walk (fps_limit changed)") && Date() < logged { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertTrue(daemon.stderr.contains("restarted=walk (fps_limit changed)"), daemon.stderr)

        try scratch.writeConfig(config(threshold: 1.5, fps: 5).replacingOccurrences(of: "workers: 2", with: "workers: 2\nthresholds: { persn: 0.5 }"))
        daemon.signal(SIGHUP)
        let refused = try XCTUnwrap(subscriber.until(timeout: 120) { $0["type"] as? String == "reload" }.match, daemon.stderr)
        XCTAssertEqual(refused["status"] as? String, "refused")
        let errors = refused["errors"] as? [String] ?? []
        XCTAssertTrue(errors.contains { $0.hasSuffix("sightline.yaml:1: threshold: must be between 0 and 1, got 1.5") }, "\(errors)")
        XCTAssertNotNil(subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match, "still running")
        stop(daemon)
    }

    func testReloadRefusesAnUnknownLabel() throws {
        try scratch.writeConfig("socket: { path: \(scratch.socketPath) }\nsources: [{ name: walk, input: \(walk), realtime: true }]")
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        // Running (its signal handlers are in place before the first frame is detected).
        XCTAssertNotNil(subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match)
        try scratch.writeConfig("socket: { path: \(scratch.socketPath) }\nthresholds: { persn: 0.5 }\nsources: [{ name: walk, input: \(walk), realtime: true }]")
        daemon.signal(SIGHUP)
        let refused = try XCTUnwrap(subscriber.until(timeout: 120) { $0["type"] as? String == "reload" }.match, daemon.stderr)
        XCTAssertEqual(refused["status"] as? String, "refused")
        XCTAssertTrue((refused["errors"] as? [String] ?? []).contains { $0.contains(#"sightline.yaml:2: thresholds.persn: unknown label "persn""#) },
                      "\(refused)")
        stop(daemon)
    }

    /// A reload naming a model or label file that does not load is refused as `check` refuses it: accepting it "for the
    /// next restart" would leave a daemon that cannot restart. The log's `reloaded` line lists what the record lists.
    func testReloadRefusesWhatARestartCouldNotLoadAndLogsWhatChanged() throws {
        let notAModel = scratch.dir.appendingPathComponent("notes.pb")
        try "not a graph".write(to: notAModel, atomically: true, encoding: .utf8)
        let socket = "socket: { path: \(scratch.socketPath) }"
        let sources = "sources: [{ name: walk, input: \(walk), realtime: true }]"
        try scratch.writeConfig("\(socket)\n\(sources)")
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        XCTAssertNotNil(subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match, daemon.stderr)
        let refusals: [(yaml: String, expected: String)] = [
            ("\(socket)\nmodel: notes.pb\n\(sources)", "sightline.yaml:2: model: cannot read model \(notAModel.path): malformed model"),
            ("\(socket)\nlabels: missing.txt\n\(sources)", "sightline.yaml:2: labels: cannot read labels \(scratch.dir.path)/missing.txt: no such file"),
        ]
        for (yaml, expected) in refusals {
            try scratch.writeConfig(yaml)
            daemon.signal(SIGHUP)
            let record = try XCTUnwrap(subscriber.until(timeout: 120) { $0["type"] as? String == "reload" }.match, daemon.stderr)
            XCTAssertEqual(record["status"] as? String, "refused", "\(record)")
            XCTAssertTrue((record["errors"] as? [String] ?? []).contains { $0.contains(expected) }, "expected \(expected) in \(record)")
            XCTAssertTrue(eventually(timeout: 120) { daemon.stderr.contains("reload refused") && daemon.stderr.contains(expected) },
                          "the log says so: \(daemon.stderr)")
        }
        XCTAssertNotNil(subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match, "still running: \(daemon.stderr)")

        try scratch.writeConfig("\(socket)\nthreshold: 0.4\nsources: [{ name: still, input: \(TestPaths.media("messi5.jpg")) }]")
        daemon.signal(SIGHUP)
        let applied = try XCTUnwrap(subscriber.until(timeout: 120) { $0["type"] as? String == "reload" }.match, daemon.stderr)
        XCTAssertEqual(applied["status"] as? String, "applied", "\(applied)")
        XCTAssertEqual(applied["changed"] as? [String], ["threshold"])
        XCTAssertEqual(applied["added"] as? [String], ["still"])
        XCTAssertEqual(applied["removed"] as? [String], ["walk"])
        XCTAssertTrue(eventually(timeout: 120) {
            ["changed=threshold", "added=still", "removed=walk"].allSatisfy { daemon.stderr.contains($0) }
        }, "the reloaded line lists what the record lists: \(daemon.stderr)")
        stop(daemon)
    }

    // MARK: Reconnect

    func testReconnectBackoffIsCappedByTheConfig() throws {
        try scratch.writeConfig("""
            reconnect_max_seconds: 1
            socket: { path: \(scratch.socketPath) }
            sources: [{ name: cam, input: /dev/video-sightline-missing }]
            """)
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        var retries: [Double] = []
        _ = subscriber.until(timeout: 120) { record in
            if record["type"] as? String == "source_down", let retry = record["retry_in_s"] as? Double { retries.append(retry) }
            return retries.count >= 4
        }
        stop(daemon)
        XCTAssertEqual(retries.count, 4, "\(retries)")
        // Uncapped, the 3rd and 4th waits would be 4 s and 8 s (+-20 %).
        XCTAssertTrue(retries.allSatisfy { $0 <= 1.2 }, "\(retries)")
    }
}
