import Daemon
import Foundation
import TestSupport
import XCTest

final class ConfigTests: XCTestCase {
    // MARK: Valid files

    func testFullConfigParses() throws {
        let yaml = """
            model: /usr/local/share/sightline/models/pedestrian-ssdlite/frozen_inference_graph.pb
            labels: null
            threshold: 0.5
            thresholds: { person: 0.6, car: 1 }
            workers: 0
            socket: { path: /run/sightline/sightline.sock, mode: "0660", group: video }
            heartbeat_seconds: 10
            sources:
              - name: front-door
                input: rtsp://cam/stream
                policy: latest
                fps_limit: 5
                realtime: false
              - name: file
                input: /srv/clip.mp4
                realtime: true
                realtime_fps: 12.5
                ring_capacity: 4
                io_timeout: 2.5
            """
        let config = try DaemonConfig.parse(yaml, origin: "sightline.yaml")
        XCTAssertEqual(config.model, "/usr/local/share/sightline/models/pedestrian-ssdlite/frozen_inference_graph.pb")
        XCTAssertNil(config.labels)
        XCTAssertEqual(config.thresholds, Thresholds(defaultScore: 0.5, perLabel: ["person": 0.6, "car": 1]))
        XCTAssertEqual(config.workers, 0)
        XCTAssertEqual(config.workerCount, ProcessInfo.processInfo.activeProcessorCount)
        XCTAssertEqual(config.socket, DaemonConfig.Socket(path: "/run/sightline/sightline.sock", mode: 0o660, group: "video"))
        XCTAssertEqual(config.heartbeat, .seconds(10))
        XCTAssertEqual(config.sources, [
            SourceOptions(name: "front-door", input: "rtsp://cam/stream", policy: .latest, fpsLimit: 5),
            SourceOptions(name: "file", input: "/srv/clip.mp4", ringCapacity: 4, realtime: true, realtimeFPS: 12.5,
                          ioTimeout: .milliseconds(2500)),
        ])
    }

    func testCameraCaptureSettings() throws {
        let config = try DaemonConfig.parse("""
            sources:
              - { name: cam, input: /dev/video0, width: 1280, height: 720, capture_fps: 15 }
              - { name: other, input: /dev/video1 }
            """, origin: "c.yaml")
        XCTAssertEqual(config.sources.first?.captureWidth, 1280)
        XCTAssertEqual(config.sources.first?.captureHeight, 720)
        XCTAssertEqual(config.sources.first?.captureFPS, 15)
        XCTAssertEqual(config.sources.map(\.name), ["cam", "other"])
        XCTAssertNil(config.sources.last?.captureWidth)
        XCTAssertThrowsError(try DaemonConfig.parse("sources:\n  - { name: cam, input: /dev/video0, width: 0, capture_fps: -1 }\n", origin: "c.yaml")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("c.yaml:2: sources[0].width: must be between 1 and 16384, got 0"), text)
            XCTAssertTrue(text.contains("sources[0].capture_fps"), text)
        }
    }

    func testMinimalConfigTakesDefaults() throws {
        let config = try DaemonConfig.parse("sources:\n  - { name: cam, input: /dev/video0 }\n", origin: "min.yaml")
        XCTAssertEqual(config, DaemonConfig(sources: [SourceOptions(name: "cam", input: "/dev/video0")]))
        XCTAssertNil(config.model)
        XCTAssertEqual(config.thresholds, Thresholds(defaultScore: 0.5))
        XCTAssertEqual(config.socket, DaemonConfig.Socket(path: "/run/sightline/sightline.sock", mode: 0o660, group: nil))
        XCTAssertEqual(config.heartbeat, .seconds(10))
        XCTAssertNil(config.sources.first?.policy, "nil: the pipeline picks by source kind")
        XCTAssertEqual(config.sources.first?.realtime, false)
        XCTAssertEqual(config.sources.first?.ioTimeout, .seconds(10))
    }

    func testShippedExampleIsValid() throws {
        let path = TestPaths.repoRoot.appendingPathComponent("configs/sightline.yaml").path
        let config = try DaemonConfig.load(path: path)
        XCTAssertFalse(config.sources.isEmpty)
        XCTAssertEqual(config.socket.path, DaemonConfig.Socket.defaultPath)
        XCTAssertEqual(config.socket.mode, 0o660)
    }

    func testSocketModeSpellings() throws {
        for (written, expected) in [("\"0660\"", 0o660), ("0660", 0o660), ("660", 0o660), ("0o640", 0o640), ("\"600\"", 0o600)] {
            let config = try DaemonConfig.parse("socket: { mode: \(written) }\nsources: [{ name: a, input: b }]", origin: "m")
            XCTAssertEqual(config.socket.mode, UInt32(expected), written)
        }
    }

    func testHeartbeatZeroTurnsItOff() throws {
        let config = try DaemonConfig.parse("heartbeat_seconds: 0\nsources: [{ name: a, input: /dev/video0 }]", origin: "h")
        XCTAssertNil(config.heartbeat)
    }

    func testRelativePathsResolveAgainstTheConfigDirectory() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("conf.yaml")
        try """
            model: models/m.pb
            labels: ../labels.txt
            sources:
              - { name: clip, input: clips/a.mp4 }
              - { name: cam, input: /dev/video0 }
              - { name: net, input: "rtsp://host/x" }
            """.write(to: file, atomically: true, encoding: .utf8)
        let config = try DaemonConfig.load(path: file.path)
        XCTAssertEqual(config.model, dir.appendingPathComponent("models/m.pb").standardized.path)
        XCTAssertEqual(config.labels, dir.deletingLastPathComponent().appendingPathComponent("labels.txt").standardized.path)
        XCTAssertEqual(config.sources.map(\.input),
                       [dir.appendingPathComponent("clips/a.mp4").standardized.path, "/dev/video0", "rtsp://host/x"])

        // parse() without a base directory keeps paths as written.
        let kept = try DaemonConfig.parse("model: models/m.pb\nsources: [{ name: a, input: clips/a.mp4 }]", origin: "x")
        XCTAssertEqual(kept.model, "models/m.pb")
        XCTAssertEqual(kept.sources.first?.input, "clips/a.mp4")
    }

    // MARK: Problems

    func testEveryProblemIsReportedWithLineAndKeyPath() {
        let yaml = """
            model: /m.pb
            threshold: 1.5
            thresholds: { person: -0.1, car: high }
            workers: -2
            wokers: 3
            socket: { path: /run/s.sock, mode: "rw-rw----", group: video, owner: me }
            heartbeat_seconds: fast
            sources:
              - name: front-door
                input: rtsp://cam/stream
                policy: latest
              - name: back
                input: /dev/video1
                policy: fastest
                fps_limit: 0
              - name: front-door
                input: /dev/video2
                policy: none
              - name: no-input
                realtime: maybe
              - input: /dev/video3
                fps_limt: 4
            """
        let error = parseError(yaml, origin: "sightline.yaml")
        let expected = [
            #"sightline.yaml:2: threshold: must be between 0 and 1, got 1.5"#,
            #"sightline.yaml:3: thresholds.person: must be between 0 and 1, got -0.1"#,
            #"sightline.yaml:3: thresholds.car: must be a number, got "high""#,
            #"sightline.yaml:4: workers: must be between 0 (one per core) and 256, got -2"#,
            #"sightline.yaml:5: wokers: unknown key (did you mean "workers"?); known keys: model, labels, precision, threshold, thresholds, workers, socket, heartbeat_seconds, reconnect_max_seconds, tracking, sources, mqtt, http"#,
            #"sightline.yaml:6: socket.owner: unknown key; known keys: path, mode, group, queue_limit, max_subscribers, stuck_seconds"#,
            #"sightline.yaml:6: socket.mode: must be octal permission bits such as "0660", got "rw-rw----""#,
            #"sightline.yaml:7: heartbeat_seconds: must be a number, got "fast""#,
            #"sightline.yaml:14: sources[1].policy: must be "lossless" or "latest", got "fastest""#,
            #"sightline.yaml:15: sources[1].fps_limit: must be greater than 0, got 0"#,
            #"sightline.yaml:16: sources[2].name: duplicate source name "front-door" (also sources[0], line 9)"#,
            #"sightline.yaml:18: sources[2].policy: must be "lossless" or "latest", got "none""#,
            #"sightline.yaml:19: sources[3].input: missing: a device (/dev/video0), a stream URL (rtsp://...) or a file"#,
            #"sightline.yaml:20: sources[3].realtime: must be true or false, got "maybe""#,
            #"sightline.yaml:21: sources[4].name: missing: every source needs a unique name"#,
            #"sightline.yaml:22: sources[4].fps_limt: unknown key (did you mean "fps_limit"?); known keys: name, input, policy, fps_limit, realtime, realtime_fps, ring_capacity, io_timeout, width, height, capture_fps, threshold, thresholds, tracking"#,
        ]
        XCTAssertEqual(error.problems.map(\.description), expected, "all problems, in file order")
        XCTAssertEqual(error.description.split(separator: "\n").count, expected.count, "one problem per line")
        XCTAssertEqual(error.problems.first { $0.keyPath == "sources[1].policy" }?.line, 14)
    }

    func testTypesAreChecked() {
        let yaml = """
            threshold: "0.5"
            workers: 2.5
            thresholds: [person]
            socket: /run/s.sock
            sources:
              - name: [a, b]
                input: { url: x }
                realtime: "true"
                ring_capacity: 0
                io_timeout: -1
                realtime_fps: 5
            """
        let messages = parseError(yaml, origin: "t.yaml").problems.map(\.description)
        XCTAssertEqual(messages, [
            #"t.yaml:1: threshold: must be a number, got "0.5""#,
            #"t.yaml:2: workers: must be a whole number, got "2.5""#,
            #"t.yaml:3: thresholds: must be a mapping of label: score, such as { person: 0.6 }, got a list"#,
            #"t.yaml:4: socket: must be a mapping of keys (path, mode, group, queue_limit, max_subscribers, stuck_seconds), got "/run/s.sock""#,
            #"t.yaml:6: sources[0].name: must be a single value, got a list"#,
            #"t.yaml:7: sources[0].input: must be a single value, got a mapping"#,
            #"t.yaml:8: sources[0].realtime: must be true or false, got "true""#,
            #"t.yaml:9: sources[0].ring_capacity: must be between 1 and 256, got 0"#,
            #"t.yaml:10: sources[0].io_timeout: must be between 0.1 and 3600 seconds, got -1"#,
            #"t.yaml:11: sources[0].realtime_fps: only applies with `realtime: true`"#,
        ])
    }

    func testSourcesMustBeANonEmptyList() {
        XCTAssertEqual(parseError("sources: []", origin: "a.yaml").description,
                       "a.yaml:1: sources: is empty: list at least one source (name and input)")
        XCTAssertEqual(parseError("sources:", origin: "a.yaml").description,
                       "a.yaml:1: sources: is empty: list at least one source (name and input)")
        XCTAssertEqual(parseError("workers: 2", origin: "a.yaml").description,
                       "a.yaml:1: sources: missing: list at least one source (name and input)")
        XCTAssertEqual(parseError("", origin: "a.yaml").description,
                       "a.yaml: the file is empty; it needs at least a `sources:` list")
        XCTAssertEqual(parseError("- a\n- b", origin: "a.yaml").description,
                       "a.yaml:1: must be a mapping of keys (model, labels, precision, threshold, thresholds, workers, socket, heartbeat_seconds, reconnect_max_seconds, tracking, sources, mqtt, http), got a list")
        XCTAssertEqual(parseError("sources: { name: a, input: b }", origin: "a.yaml").description,
                       "a.yaml:1: sources: must be a list of sources, got a mapping")
        XCTAssertEqual(parseError("sources:\n  - name: \"\"\n    input: x", origin: "a.yaml").description,
                       "a.yaml:2: sources[0].name: must not be empty")
    }

    func testSyntaxErrorIsOneProblemWithItsLine() {
        let error = parseError("threshold: 0.5\nsources:\n  - name: a\n    input: [unclosed\n", origin: "bad.yaml")
        XCTAssertEqual(error.problems.count, 1, error.description)
        XCTAssertTrue(error.description.hasPrefix("bad.yaml:5: YAML syntax error at column 1: "), error.description)

        let tabs = parseError("sources:\n\t- name: a\n", origin: "tab.yaml")
        XCTAssertEqual(tabs.problems.count, 1, tabs.description)
        XCTAssertTrue(tabs.description.hasPrefix("tab.yaml:2: YAML syntax error at column 1: found character that cannot start any token"), tabs.description)
    }

    func testDuplicateKeyIsReported() {
        let error = parseError("workers: 1\nworkers: 2\nsources: [{ name: a, input: b }]", origin: "dup.yaml")
        XCTAssertEqual(error.description, #"dup.yaml:1: key "workers" given more than once in the same mapping (first here)"#)
    }

    func testMissingFileNamesThePath() {
        let path = "/nonexistent/sightline.yaml"
        XCTAssertThrowsError(try DaemonConfig.load(path: path)) { error in
            XCTAssertEqual("\(error)", "/nonexistent/sightline.yaml: cannot read the config file: No such file or directory")
        }
        XCTAssertThrowsError(try DaemonConfig.load(path: "/")) { error in
            XCTAssertEqual("\(error)", "/: cannot read the config file: is a directory")
        }
    }

    func testLoadReportsLinesWithThePathAsOrigin() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("sightline.yaml")
        try "sources:\n  - name: a\n    input: b\n    policy: fastest\n".write(to: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try DaemonConfig.load(path: file.path)) { error in
            XCTAssertEqual("\(error)", "\(file.path):4: sources[0].policy: must be \"lossless\" or \"latest\", got \"fastest\"")
        }
    }

    private func parseError(_ yaml: String, origin: String, file: StaticString = #filePath, line: UInt = #line) -> ConfigError {
        do {
            let config = try DaemonConfig.parse(yaml, origin: origin)
            XCTFail("expected an error, got \(config)", file: file, line: line)
            return ConfigError([])
        } catch {
            return error
        }
    }
}
