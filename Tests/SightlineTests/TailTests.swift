import Foundation
import TestSupport
import XCTest

/// `sightline tail` against a fixed transcript served on a real Unix socket: every kind of record it prints, and the
/// lines it must pass on rather than drop (a newer daemon's record type, a line that is not a record).
final class TailTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    var dir: URL!

    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    static let newerType = #"{"type":"zone_enter","source":"door","zone":"porch","time":"2026-11-22T22:15:50.050Z"}"#
    static let malformedLag = #"{"type":"lag","time":"2026-11-22T22:15:53.500Z"}"#

    static let transcript = [
        #"{"type":"hello","schema":1,"version":"0.9.0","time":"2026-11-22T22:15:48.912Z","model":"m.pb","precision":"int8","#
            + #""labels":["person"],"sources":["door","yard"],"source_states":{"door":"up","yard":"down"}}"#,
        #"{"type":"detections","source":"door","frame":41,"seq":40,"pts":4.1,"time":"2026-11-22T22:15:49.001Z","#
            + #""capture_time":"2026-11-22T22:15:48.881Z","width":768,"height":576,"latency_ms":30.593,"infer_ms":11.556,"dropped":0,"#
            + #""detections":[{"label":"person","class_id":1,"score":0.9882086,"box":{"xmin":0.6510308,"ymin":0.27968413,"xmax":0.6884589,"ymax":0.4073289}},"#
            + #"{"label":"person","class_id":1,"score":0.61,"box":{"xmin":0.1,"ymin":0.2,"xmax":0.3,"ymax":0.4}}]}"#,
        #"{"type":"detections","source":"door","frame":42,"seq":41,"pts":4.2,"time":"2026-11-22T22:15:49.101Z","#
            + #""capture_time":"2026-11-22T22:15:48.981Z","width":768,"height":576,"latency_ms":30.1,"infer_ms":11.2,"dropped":0,"detections":[]}"#,
        #"{"type":"heartbeat","source":"yard","time":"2026-11-22T22:15:50.000Z","state":"down","fps":0.0,"dropped_total":0}"#,
        TailTests.newerType,
        #"{"type":"object_start","source":"door","track_id":7,"label":"person","time":"2026-11-22T22:15:50.100Z","#
            + #""first_seen":"2026-11-22T22:15:49.881Z","frame":43,"score":0.8,"box":{"xmin":0.1,"ymin":0.2,"xmax":0.3,"ymax":0.4}}"#,
        #"{"type":"presence","source":"door","label":"person","count":1,"time":"2026-11-22T22:15:50.100Z"}"#,
        #"{"type":"source_down","source":"door","time":"2026-11-22T22:15:51.000Z","reason":"end of stream","retry_in_s":1.1}"#,
        #"{"type":"source_up","source":"door","time":"2026-11-22T22:15:52.000Z","input":"rtsp://viewer:***@cam/stream"}"#,
        #"{"type":"lag","dropped":12,"time":"2026-11-22T22:15:53.000Z"}"#,
        #"{"type":"object_end","source":"door","track_id":7,"label":"person","time":"2026-11-22T22:15:53.200Z","#
            + #""first_seen":"2026-11-22T22:15:49.881Z","last_seen":"2026-11-22T22:15:51.881Z","last_frame":63,"duration_s":2.0,"#
            + #""best_score":0.9,"best_box":{"xmin":0.1,"ymin":0.2,"xmax":0.3,"ymax":0.4},"reason":"max_age"}"#,
        TailTests.malformedLag,
        "not a record",
    ]

    func testPrintsEachRecordAndPassesOnWhatItDoesNotKnow() throws {
        let path = dir.appendingPathComponent("t.sock").path
        let listener = try listen(path)
        defer { close(listener) }
        let tail = try BackgroundProcess(binary, ["tail", "--once", path])
        let connection = try accept(listener, timeout: 120)
        let bytes = Array(Self.transcript.map { $0 + "\n" }.joined().utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }, bytes.count)
        close(connection)
        XCTAssertEqual(tail.wait(timeout: 120), 1, "--once: the connection ended, so does tail")
        let expected = [
            "22:15:48.912 connected: schema 1, sources door (up), yard (down)",
            "22:15:49.001 door #41 person 0.99 [0.651 0.280 0.688 0.407]",
            "22:15:49.001 door #41 person 0.61 [0.100 0.200 0.300 0.400]",
            Self.newerType,
            "22:15:50.100 door + person #7",
            "22:15:50.100 door person: 1",
            "22:15:51.000 door DOWN: end of stream",
            "22:15:52.000 door up",
            "22:15:53.000 (this subscriber fell behind: 12 records skipped)",
            "22:15:53.200 door - person #7 after 2.0 s (max_age)",
            Self.malformedLag,
            "not a record",
        ].map { $0 + "\n" }.joined()
        let deadline = Date().addingTimeInterval(120)
        while tail.stdout != expected && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertEqual(tail.stdout, expected, tail.stderr)
        XCTAssertTrue(tail.stderr.contains("the daemon closed the connection"), tail.stderr)

        let raw = try BackgroundProcess(binary, ["tail", "--once", "--raw", path])
        let rawConnection = try accept(listener, timeout: 120)
        XCTAssertEqual(bytes.withUnsafeBytes { write(rawConnection, $0.baseAddress, $0.count) }, bytes.count)
        close(rawConnection)
        XCTAssertEqual(raw.wait(timeout: 120), 1)
        let rawExpected = Self.transcript.map { $0 + "\n" }.joined()
        let rawDeadline = Date().addingTimeInterval(120)
        while raw.stdout != rawExpected && Date() < rawDeadline { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertEqual(raw.stdout, rawExpected, "--raw passes every line on unchanged")
    }

    /// Names come from the daemon's config and inputs, so they may hold control characters (JSON carries them escaped,
    /// and DEL and C1 need not be): tail writes each one as \u001b and so on, never raw to the terminal. --raw keeps
    /// the lines as they came.
    func testControlCharactersInRecordsNeverReachTheTerminal() throws {
        let path = dir.appendingPathComponent("t.sock").path
        let listener = try listen(path)
        defer { close(listener) }
        let sent = [
            #"{"type":"hello","schema":1,"version":"0.9.0","time":"2026-11-22T22:15:48.912Z","model":"m.pb","precision":"int8","#
                + #""labels":["person"],"sources":["door\u001b[2J","yard"],"source_states":{"door\u001b[2J":"up","yard":"up"}}"#,
            #"{"type":"detections","source":"door\u001b[2J","frame":41,"seq":40,"pts":4.1,"time":"2026-11-22T22:15:49.001Z","#
                + #""capture_time":"2026-11-22T22:15:48.881Z","width":768,"height":576,"latency_ms":30.5,"infer_ms":11.5,"dropped":0,"#
                + "\"detections\":[{\"label\":\"pers\u{9B}31mon\",\"class_id\":1,\"score\":0.5,\"box\":{\"xmin\":0.1,\"ymin\":0.2,\"xmax\":0.3,\"ymax\":0.4}}]}",
            "{\"type\":\"source_down\",\"source\":\"yard\",\"time\":\"2026-11-22T22:15:51.000Z\",\"reason\":\"bad\\ninput\u{7F}\",\"retry_in_s\":1.1}",
            "not a record \u{1B}]0;owned\u{07}\r",
        ]
        let bytes = Array(sent.map { $0 + "\n" }.joined().utf8)
        for raw in [false, true] {
            let tail = try BackgroundProcess(binary, ["tail", "--once"] + (raw ? ["--raw"] : []) + [path])
            let connection = try accept(listener, timeout: 120)
            XCTAssertEqual(bytes.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }, bytes.count)
            close(connection)
            XCTAssertEqual(tail.wait(timeout: 120), 1, tail.stderr)
            let expected = raw ? sent : [
                #"22:15:48.912 connected: schema 1, sources door\u001b[2J (up), yard (up)"#,
                #"22:15:49.001 door\u001b[2J #41 pers\u009b31mon 0.50 [0.100 0.200 0.300 0.400]"#,
                #"22:15:51.000 yard DOWN: bad\u000ainput\u007f"#,
                #"not a record \u001b]0;owned\u0007\u000d"#,
            ]
            let expectedText = expected.map { $0 + "\n" }.joined()
            let deadline = Date().addingTimeInterval(120)
            while tail.stdout != expectedText && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            XCTAssertEqual(tail.stdout, expectedText, "raw: \(raw)")
        }
    }

    /// Records the daemon sent before it answered the subscription were not filtered by it: `tail --events` drops them.
    func testWhatComesBeforeSubscribedIsNotPrintedForASubscription() throws {
        let path = dir.appendingPathComponent("t.sock").path
        let listener = try listen(path)
        defer { close(listener) }
        let tail = try BackgroundProcess(binary, ["tail", "--once", "--raw", "--events", path])
        let connection = try accept(listener, timeout: 120)
        let subscribed = #"{"type":"subscribed","types":["object_start","object_end","presence"],"sources":null,"time":"2026-11-22T22:15:49.500Z"}"#
        let sent = [Self.transcript[0], Self.transcript[1], subscribed, Self.transcript[5], Self.transcript[6]]
        let bytes = Array(sent.map { $0 + "\n" }.joined().utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }, bytes.count)
        close(connection)
        XCTAssertEqual(tail.wait(timeout: 120), 1, tail.stderr)
        let expected = [Self.transcript[0], subscribed, Self.transcript[5], Self.transcript[6]].map { $0 + "\n" }.joined()
        let deadline = Date().addingTimeInterval(120)
        while tail.stdout != expected && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertEqual(tail.stdout, expected, "the detections record before subscribed is not printed")
    }

    /// A socket that is not the daemon's (its HTTP socket is an easy mistake) ends tail, reconnecting or not, with
    /// a line saying so: one that answers with something else at once, one that never says anything.
    func testASocketThatIsNotTheDaemonsEndsTailSayingSo() throws {
        let path = dir.appendingPathComponent("h.sock").path
        let listener = try listen(path)
        defer { close(listener) }
        let tail = try BackgroundProcess(binary, ["tail", path])
        let connection = try accept(listener, timeout: 120)
        let bytes = Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }, bytes.count)
        XCTAssertEqual(tail.wait(timeout: 120), 1, tail.stderr)
        close(connection)
        XCTAssertTrue(tail.stderr.contains("its first line is not a hello record: this is not a Sightline daemon's subscriber socket"), tail.stderr)
        XCTAssertEqual(tail.stdout, "")

        let silent = try BackgroundProcess(binary, ["tail", "--once", path])
        let quiet = try accept(listener, timeout: 120)
        defer { close(quiet) }
        XCTAssertEqual(silent.wait(timeout: 120), 1, silent.stderr)
        XCTAssertTrue(silent.stderr.contains("no hello within 10 s: this is not a Sightline daemon's subscriber socket"), silent.stderr)
    }

    private func listen(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard fd >= 0, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw CocoaError(.fileWriteInvalidFileName) }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 4) == 0 else {
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL)
        }
        return fd
    }

    private func accept(_ listener: Int32, timeout: TimeInterval) throws -> Int32 {
        var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { throw ProcessRunError.timedOut("tail never connected") }
        let fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
        return fd
    }
}
