import Foundation
import TestSupport
import XCTest

/// `sightline run` as systemd runs it: the real binary, its socket, signals, and a real network stream.
final class DaemonProcessTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    var scratch: DaemonScratch!

    override func setUpWithError() throws { scratch = try DaemonScratch() }
    override func tearDown() { scratch?.remove() }

    func writeConfig(threshold: Double = 0.5, heartbeat: Int = 10, queueLimit: Int = 1024, stuckSeconds: Double = 30,
                     sources: String? = nil) throws {
        let defaultSources = """
          - name: walk
            input: \(TestPaths.media("vtest.avi"))
            realtime: true
        """
        try scratch.writeConfig("""
        threshold: \(threshold)
        workers: 2
        heartbeat_seconds: \(heartbeat)
        socket: { path: \(scratch.socketPath), mode: "0600", queue_limit: \(queueLimit), stuck_seconds: \(stuckSeconds) }
        sources:
        \(sources ?? defaultSources)
        """)
    }

    func detections(_ records: [[String: Any]]) -> [[String: Any]] { records.filter { $0["type"] as? String == "detections" } }

    func testSubscribersReceiveIdenticalRecordsAndASlowOneDelaysNobody() throws {
        try writeConfig()
        let daemon = try scratch.startDaemon()
        let subscribers = try (0..<3).map { _ in try LineSubscriber(path: scratch.socketPath) }
        let stalled = try LineSubscriber(path: scratch.socketPath)
        // Shrink the stalled subscriber's receive buffer so its queue on the daemon's side fills up.
        var small: Int32 = 4096
        setsockopt(stalled.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        for s in subscribers + [stalled] {
            let hello = try XCTUnwrap(s.next())
            XCTAssertEqual(hello["type"] as? String, "hello")
            XCTAssertEqual(hello["schema"] as? Int, 1)
            XCTAssertEqual(hello["sources"] as? [String], ["walk"])
            XCTAssertEqual(hello["labels"] as? [String], ["person"])
            XCTAssertTrue(["f32", "bf16", "int8"].contains(hello["precision"] as? String ?? ""), "\(hello)")
        }
        // The readers read 60 records each while the stalled one reads nothing: the stalled subscriber holds
        // nobody up (how promptly records arrive is a timing claim, for the benchmarks).
        let streams = subscribers.map { s in
            var lines: [(seq: Int, line: String)] = []
            while lines.count < 60, let r = s.next(timeout: 60) {
                guard r["type"] as? String == "detections", let seq = r["seq"] as? Int else { continue }
                lines.append((seq, s.lastLine))
            }
            return lines
        }
        XCTAssertEqual(streams.map(\.count), [60, 60, 60])
        // They connected one after another while the source ran: compare from the first record all of them got.
        let start = streams.compactMap { $0.first?.seq }.max() ?? 0
        let common = streams.map { Array($0.filter { $0.seq >= start }.map(\.line).prefix(30)) }
        XCTAssertEqual(common.map(\.count), [30, 30, 30], "first records: \(streams.map { $0.first?.seq ?? -1 })")
        XCTAssertEqual(Set(common).count, 1, "subscribers see identical records")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
    }

    func testStalledSubscriberGetsALagRecord() throws {
        // stuck_seconds far beyond the stall: this stalled subscriber must be told it lags, not cut off, however long
        // the run takes on a loaded machine.
        try writeConfig(queueLimit: 1024, stuckSeconds: 3600, sources: """
          - name: fast
            input: \(TestPaths.media("vtest.avi"))
            realtime: true
            realtime_fps: 100
        """)
        let daemon = try scratch.startDaemon()
        let stalled = try LineSubscriber(path: scratch.socketPath)
        var small: Int32 = 2048
        setsockopt(stalled.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let reader = try LineSubscriber(path: scratch.socketPath)
        // The reader keeps up with everything (its queue absorbs the moments a loaded machine keeps it from reading)
        // while the stalled one sleeps through the records: 1200 records are more than its queue (1024) and socket
        // buffers hold. The stall lasts beyond the default stuck_seconds (30 s), so
        // the setting is seen to be applied (load can only lengthen it).
        let stallEnds = Date().addingTimeInterval(35)
        var detected = 0
        let read = reader.until(idle: 120) { record in
            if record["type"] as? String == "detections" { detected += 1 }
            return detected >= 1200 && Date() > stallEnds
        }
        XCTAssertNotNil(read.match, "the reading subscriber got 1200 records (\(detected))")
        XCTAssertEqual(read.seen.filter { $0["type"] as? String == "lag" }.count, 0, "the reader never lagged")
        let lag = stalled.until(idle: 60) { ["lag", "error"].contains($0["type"] as? String) }
        let lagRecord = try XCTUnwrap(lag.match, "a stalled subscriber is told it lost records")
        XCTAssertEqual(lagRecord["type"] as? String, "lag", "\(lagRecord)")
        XCTAssertGreaterThan(lagRecord["dropped"] as? Int ?? 0, 0)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 60), 0, daemon.stderr)
    }

    func testASubscriberThatReadsNothingIsDisconnectedWhileOthersAreServed() throws {
        try writeConfig(queueLimit: 8, stuckSeconds: 5, sources: """
          - name: fast
            input: \(TestPaths.media("vtest.avi"))
            realtime: true
            realtime_fps: 100
        """)
        let daemon = try scratch.startDaemon()
        let stalled = try LineSubscriber(path: scratch.socketPath)
        let reader = try LineSubscriber(path: scratch.socketPath)
        // The reader reads on until the daemon hangs up on the stalled subscriber (which reads nothing, so it never
        // takes its farewell record either); a guard of minutes only catches a daemon that never does.
        var hungUp = false, readerTypes: [String] = []
        let deadline = Date().addingTimeInterval(300)
        while !hungUp, Date() < deadline {
            if let record = reader.next(timeout: 1) { readerTypes.append(record["type"] as? String ?? "?") }
            // POLLHUP: the daemon closed its end (what was sent before still waits to be read).
            var pfd = pollfd(fd: stalled.fd, events: Int16(POLLIN), revents: 0)
            hungUp = poll(&pfd, 1, 0) > 0 && pfd.revents & Int16(POLLHUP) != 0
        }
        XCTAssertTrue(hungUp, "the stalled subscriber was disconnected")
        XCTAssertGreaterThan(readerTypes.filter { $0 == "detections" }.count, 0, "records flowed meanwhile")
        XCTAssertFalse(readerTypes.contains("error"), "the reading subscriber is never cut off")
        XCTAssertNotNil(reader.until(idle: 120) { $0["type"] as? String == "detections" }.match, "and is still served")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 60), 0, daemon.stderr)
    }

    func testSIGTERMDrainsAndExitsLosingNothing() throws {
        try writeConfig()
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        XCTAssertEqual(subscriber.next()?["type"] as? String, "hello")
        let before = subscriber.until(timeout: 120) { $0["type"] as? String == "detections" && ($0["seq"] as? Int ?? 0) >= 10 }
        XCTAssertNotNil(before.match)
        daemon.signal(SIGTERM)
        // Every seq this subscriber saw, before and after SIGTERM (under load, none may come after it).
        var seqs = detections(before.seen + [before.match].compactMap { $0 }).map { $0["seq"] as? Int ?? -1 }
        while let r = subscriber.next(timeout: 60) {
            if r["type"] as? String == "detections" { seqs.append(r["seq"] as? Int ?? -1) }
        }
        // A generous bound that only catches a hang; how fast it drains is for the benchmarks.
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
        // Every record the daemon emitted reached the subscriber that kept reading.
        let emitted = daemon.stderr.firstMatch(of: /stopped records=(\d+)/).flatMap { Int($0.1) }
        XCTAssertNotNil(emitted, daemon.stderr)
        XCTAssertEqual(seqs.last.map { $0 + 1 }, emitted, "the last record emitted was delivered")
        let first = seqs.first ?? 0
        XCTAssertEqual(seqs, Array(first..<first + seqs.count), "no gaps")
    }

    func testSIGHUPAppliesANewThresholdKeepingSubscribers() throws {
        try writeConfig(threshold: 0.95)
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        let before = subscriber.until(timeout: 120) { ($0["seq"] as? Int ?? 0) >= 20 }
        XCTAssertNotNil(before.match)
        let scoresBefore = detections(before.seen).flatMap { ($0["detections"] as? [[String: Any]] ?? []).map { $0["score"] as? Double ?? -1 } }
        XCTAssertTrue(scoresBefore.allSatisfy { $0 >= 0.95 }, "threshold 0.95 before the reload")
        try writeConfig(threshold: 0.3)
        daemon.signal(SIGHUP)
        let after = subscriber.until(timeout: 120) { record in
            (record["detections"] as? [[String: Any]] ?? []).contains { ($0["score"] as? Double ?? 1) < 0.9 }
        }
        XCTAssertNotNil(after.match, "after SIGHUP, the same connection receives detections below the old threshold")
        XCTAssertFalse(after.seen.contains { $0["type"] as? String == "source_down" }, "an unchanged source is not restarted")
        // The new thresholds apply before the reload is logged, and stderr is collected asynchronously.
        XCTAssertTrue(eventually(timeout: 120) { daemon.stderr.contains("reloaded") }, daemon.stderr)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
    }

    func testReloadThatChangesASourceEndsItsOldRunBeforeTheNewOneStarts() throws {
        try writeConfig()
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        XCTAssertNotNil(subscriber.until(timeout: 120) { ($0["seq"] as? Int ?? 0) >= 10 }.match, "records before the reload")
        try writeConfig(sources: """
          - name: walk
            input: \(TestPaths.media("vtest.avi"))
            realtime: true
            realtime_fps: 8
        """)
        daemon.signal(SIGHUP)
        let upWait = subscriber.until(timeout: 120) { $0["type"] as? String == "source_up" }
        XCTAssertNotNil(upWait.match, "the changed source reopens: \(upWait.seen.map { $0["type"] ?? "" })")
        let first = subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match
        let before = upWait.seen.filter { ["detections", "source_down", "source_up"].contains($0["type"] as? String ?? "") }
        let downs = before.enumerated().filter { $0.element["type"] as? String == "source_down" }
        XCTAssertEqual(downs.count, 1, "one source_down for the old run, before the new source_up")
        if let down = downs.first {
            XCTAssertEqual(down.offset, before.count - 1, "nothing of the old run after its source_down")
            XCTAssertTrue((down.element["reason"] as? String ?? "").contains("reload"), "\(down.element)")
        }
        let oldSeqs = before.compactMap { $0["seq"] as? Int }
        XCTAssertEqual(oldSeqs, Array((oldSeqs.first ?? 0)..<((oldSeqs.first ?? 0) + oldSeqs.count)), "the old run's records in order")
        XCTAssertEqual(first?["seq"] as? Int, 0, "the new run counts from 0")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 60), 0, daemon.stderr)
    }

    func testAStreamThatDisappearsGoesDownAndComesBack() throws {
        let ffmpeg = try XCTUnwrap(["/usr/bin/ffmpeg", "/usr/local/bin/ffmpeg"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let port = freeLoopbackPort()
        let url = "http://127.0.0.1:\(port)/cam.ts"
        func serve() throws -> BackgroundProcess {
            try BackgroundProcess(ffmpeg, ["-v", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", TestPaths.media("vtest.avi"),
                                           "-c:v", "mpeg4", "-q:v", "4", "-f", "mpegts", "-listen", "1", url])
        }
        var server: BackgroundProcess? = try serve()
        try writeConfig(sources: """
          - name: net
            input: \(url)
        """)
        Thread.sleep(forTimeInterval: 0.5)
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        XCTAssertNotNil(subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match, "detections from the stream")
        server = nil  // killed
        let down = subscriber.until(timeout: 120) { $0["type"] as? String == "source_down" }
        let downRecord = try XCTUnwrap(down.match, "source_down after the stream died")
        XCTAssertEqual(downRecord["source"] as? String, "net")
        XCTAssertFalse((downRecord["reason"] as? String ?? "").isEmpty)
        server = try serve()
        let up = subscriber.until(timeout: 120) { $0["type"] as? String == "source_up" }
        XCTAssertNotNil(up.match, "source_up once the stream is back: \(up.seen.map { $0["type"] ?? "" })")
        XCTAssertNotNil(subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match, "detections resume")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
        _ = server
    }

    func testSdNotifyReadyStatusWatchdogStopping() throws {
        try writeConfig()
        let notifyPath = scratch.dir.appendingPathComponent("notify").path
        let notify = try DatagramListener(path: notifyPath)
        let daemon = try scratch.startDaemon(environment: ["NOTIFY_SOCKET": notifyPath, "WATCHDOG_USEC": "1000000"])
        var messages: [String] = []
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && !(messages.contains("READY=1") && messages.contains("WATCHDOG=1") && messages.contains { $0.hasPrefix("STATUS=walk") }) {
            if let m = notify.receive(timeout: 1) { messages.append(m) }
        }
        XCTAssertTrue(messages.contains("READY=1"), "\(messages)")
        XCTAssertTrue(messages.contains("WATCHDOG=1"), "\(messages)")
        XCTAssertTrue(messages.contains { $0.hasPrefix("STATUS=walk") && $0.contains("fps") }, "\(messages)")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0)
        var last: [String] = []
        while let m = notify.receive(timeout: 0.5) { last.append(m) }
        XCTAssertTrue(last.contains("STOPPING=1"), "\(last)")
    }

    func testSourcesThatEndAtOnceAreAnnouncedFirstAndReopened() throws {
        // One-frame "live" sources end as soon as they open: each must go up, deliver, go down and come back,
        // and never deliver between its source_down and its next source_up.
        let names = (0..<4).map { "still\($0)" }
        try writeConfig(sources: names.map { "  - { name: \($0), input: \(TestPaths.media("messi5.jpg")), realtime: true }" }.joined(separator: "\n"))
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        var ups: [String: Int] = [:], up: [String: Bool] = [:], trail: [String] = []
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, names.contains(where: { ups[$0, default: 0] < 2 }), let r = subscriber.next(timeout: 60) {
            let source = r["source"] as? String ?? ""
            trail.append("\(r["type"] ?? "?") \(source) \(r["seq"] ?? "")")
            switch r["type"] as? String {
            case "source_up":
                ups[source, default: 0] += 1
                up[source] = true
            case "source_down":
                up[source] = false
            case "detections":
                // Unknown until the first up/down seen: this subscriber may have connected after the first source_up.
                XCTAssertNotEqual(up[source], false, "\(source): detections after source_down: \(trail.suffix(12))")
            default: break
            }
        }
        for name in names { XCTAssertGreaterThanOrEqual(ups[name, default: 0], 2, "\(name) was reopened after it ended: \(ups)") }
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
    }

    func testUsesTheSocketSystemdPasses() throws {
        let activate = "/usr/bin/systemd-socket-activate"
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: activate), "systemd-socket-activate is not installed")
        try writeConfig()
        // systemd-socket-activate listens, and on the first connection starts the daemon with the socket as fd 3
        // (LISTEN_FDS=1, LISTEN_PID set), as systemd does for sightline.socket.
        let activated = scratch.dir.appendingPathComponent("activated.sock").path
        let launcher = try BackgroundProcess(activate, ["-l", activated, binary, "run", "--config", scratch.configPath])
        let subscriber = try LineSubscriber(path: activated)
        let hello = try XCTUnwrap(subscriber.next(timeout: 60), launcher.stderr)
        XCTAssertEqual(hello["type"] as? String, "hello")
        XCTAssertNotNil(subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match, "detections on the passed socket")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.socketPath), "the configured path is not used when systemd passes a socket")
        XCTAssertTrue(launcher.stderr.contains("listening on the socket passed by systemd"), launcher.stderr)
        launcher.signal(SIGTERM)
        XCTAssertEqual(launcher.wait(timeout: 120), 0, launcher.stderr)
    }

    // MARK: Bad configuration and environment

    func testInvalidConfigNamesEveryErrorAndStartsNothing() throws {
        try scratch.writeConfig("""
        threshold: 1.5
        socket: { path: \(scratch.socketPath) }
        sources:
          - name: a
            input: /dev/video0
            policy: fastest
          - name: a
        """)
        for command in ["run", "check"] {
            let result = try runProcess(binary, [command, "--config", scratch.configPath])
            XCTAssertNotEqual(result.status, 0)
            for needle in ["threshold", "sources[0].policy", "sources[1]", "input"] {
                XCTAssertTrue(result.stderr.contains(needle), "\(command): \(needle) not named in: \(result.stderr)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.socketPath), "nothing started")
        }
    }

    func testUnwritableSocketPathIsFatal() throws {
        try writeConfig()
        var text = try String(contentsOfFile: scratch.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: scratch.socketPath, with: "/proc/sightline-test/s.sock")
        try scratch.writeConfig(text)
        let result = try runProcess(binary, ["run", "--config", scratch.configPath])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("/proc/sightline-test/s.sock"), result.stderr)
    }

    func testMissingDeviceIsReportedAndRetriedNotFatal() throws {
        try writeConfig(sources: """
          - name: cam
            input: /dev/video-sightline-missing
        """)
        let daemon = try scratch.startDaemon()
        let subscriber = try LineSubscriber(path: scratch.socketPath)
        let down = try XCTUnwrap(subscriber.until(timeout: 120) { $0["type"] as? String == "source_down" }.match)
        XCTAssertTrue((down["reason"] as? String ?? "").lowercased().contains("no such"), "\(down)")
        XCTAssertNotNil(down["retry_in_s"] as? Double)
        XCTAssertNil(daemon.wait(timeout: 0.5), "a missing device does not stop the daemon")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0)
    }
}

/// The receiving end of sd_notify: a datagram socket at `path`.
final class DatagramListener {
    let fd: Int32
    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let ok = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard ok == 0 else { throw ProcessRunError.timedOut("bind \(path)") }
    }
    deinit { close(fd) }
    func receive(timeout: TimeInterval) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
}
