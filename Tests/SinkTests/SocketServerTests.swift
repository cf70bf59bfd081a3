import Foundation
import XCTest

import Sink

final class SocketServerTests: XCTestCase {
    private var directory = ""
    private var servers: [SocketServer] = []

    override func setUpWithError() throws {
        var template = Array("/tmp/sightline-sink-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SinkError("mkdtemp failed") }
        directory = String(cString: made)
    }

    override func tearDown() {
        for server in servers { server.close(flushTimeout: .zero) }
        servers.removeAll()
        chmod(directory, 0o755)
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func path(_ name: String = "sink.sock") -> String { directory + "/" + name }

    private func makeServer(_ path: String, _ options: SocketServer.Options = .init()) throws -> SocketServer {
        let server = try SocketServer(path: path, options: options, hello: { Self.hello })
        servers.append(server)
        return server
    }

    private static let hello = #"{"type":"hello","schema":1}"# + "\n"
    private static let pad = String(repeating: "x", count: 170)

    /// About 200 bytes, numbered.
    private static func line(_ n: Int) -> String { #"{"type":"test","n":"# + String(n) + #","pad":""# + pad + "\"}\n" }

    private static func number(_ line: String) -> Int? {
        guard line.hasPrefix(#"{"type":"test","n":"#) else { return nil }
        return Int(line.dropFirst(19).prefix { $0.isNumber })
    }

    private static func lagCount(_ line: String) -> Int? {
        guard line.hasPrefix(#"{"type":"lag","#),
              let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let time = object["time"] as? String, time.hasSuffix("Z") else { return nil }
        return object["dropped"] as? Int
    }

    private func waitUntil(_ timeout: Duration = .seconds(30), _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(5_000)
        }
        return condition()
    }

    // MARK: 1

    func testSubscribersReceiveIdenticalStreams() throws {
        let server = try makeServer(path())
        let clients = try (0..<3).map { _ in try Client(path: path()) }
        for client in clients { XCTAssertEqual(client.readLine(), Self.hello, "hello comes first") }
        XCTAssertEqual(server.subscriberCount, 3)

        let sent = (0..<500).map { Self.line($0).replacingOccurrences(of: "xxxx", with: "é∂\\\"", options: [], range: nil) }
        for line in sent { server.broadcast(line) }
        for (index, client) in clients.enumerated() {
            var received: [String] = []
            for _ in 0..<sent.count {
                guard let line = client.readLine() else { break }
                received.append(line)
            }
            XCTAssertEqual(received.count, sent.count, "client \(index)")
            XCTAssertEqual(Array(received.joined().utf8), Array(sent.joined().utf8), "client \(index) got a byte-identical stream")
        }
    }

    // MARK: 2

    func testStalledSubscriberDelaysNobodyAndLearnsWhatItLost() throws {
        let server = try makeServer(path(), .init(queueLimit: 256, stuckAfter: .seconds(60)))
        let reader = try Client(path: path())
        let stalled = try Client(path: path())
        XCTAssertEqual(reader.readLine(), Self.hello)
        XCTAssertEqual(stalled.readLine(), Self.hello)

        // Should broadcast() ever wait on the stalled socket, cut it loose so the test fails instead of hanging.
        let loopDone = Flag(), cutLoose = Flag()
        // A hang guard: minutes, since a loaded machine may take long over the loop itself.
        DispatchQueue.global().asyncAfter(deadline: .now() + 600) {
            if !loopDone.isSet {
                cutLoose.set()
                stalled.shutdown()
            }
        }

        let total = 20_000, batch = 100
        let lines = (0..<total).map(Self.line)
        var inBroadcast = Duration.zero, slowest = Duration.zero
        var readerGot = 0, readerLag = false
        let started = ContinuousClock.now
        for batchStart in stride(from: 0, to: total, by: batch) {
            for n in batchStart..<batchStart + batch {
                let t0 = ContinuousClock.now
                server.broadcast(lines[n])
                let spent = ContinuousClock.now - t0
                inBroadcast += spent
                slowest = max(slowest, spent)
            }
            // The reading subscriber keeps up batch by batch (its queue never overflows).
            for n in batchStart..<batchStart + batch {
                guard let line = reader.readLine() else { break }
                if Self.lagCount(line) != nil { readerLag = true }
                if Self.number(line) == n { readerGot += 1 }
            }
        }
        let wall = ContinuousClock.now - started
        loopDone.set()
        print("SocketServerTests: 20000 broadcasts took \(inBroadcast) in broadcast() (slowest call \(slowest)); loop with reader \(wall)")
        XCTAssertEqual(readerGot, total, "the reading subscriber got every line")
        XCTAssertFalse(readerLag)
        // How long broadcast() takes is for the benchmarks; that it never waits for the stalled subscriber is shown
        // by the loop finishing while that subscriber reads nothing.
        XCTAssertFalse(cutLoose.isSet, "broadcast() waited for the stalled subscriber")

        // Now the stalled subscriber reads: lines in order, each gap announced by a lag record.
        var received = 0, dropped = 0, expected = 0, pendingLag: Int?, lagRecords = 0
        while expected < total, let line = stalled.readLine(timeout: .seconds(10)) {
            if let lag = Self.lagCount(line) {
                XCTAssertNil(pendingLag, "two lag records in a row")
                XCTAssertGreaterThan(lag, 0)
                pendingLag = lag
                lagRecords += 1
                continue
            }
            guard let n = Self.number(line) else { return XCTFail("unexpected line \(line)") }
            if n != expected {
                XCTAssertEqual(pendingLag, n - expected, "a gap of \(n - expected) lines before line \(n) announced as \(String(describing: pendingLag))")
            } else {
                XCTAssertNil(pendingLag, "lag record without a gap before line \(n)")
            }
            dropped += pendingLag ?? 0
            pendingLag = nil
            received += 1
            expected = n + 1
        }
        print("SocketServerTests: stalled subscriber received \(received), dropped \(dropped) in \(lagRecords) lag record(s)")
        XCTAssertEqual(expected, total, "the stalled subscriber reached the last line")
        XCTAssertGreaterThan(lagRecords, 0)
        XCTAssertGreaterThan(dropped, 0)
        XCTAssertEqual(received + dropped, total)
    }

    // MARK: 3

    func testStuckSubscriberIsDisconnected() throws {
        // The reader reads between batches: stuckAfter is long enough that only a stall of the whole test process
        // under load, not the time a batch takes, could look like being stuck.
        let stuckAfter = Duration.seconds(3)
        let server = try makeServer(path(), .init(queueLimit: 256, stuckAfter: stuckAfter))
        let stuck = try Client(path: path())  // never reads, not even the hello
        let reader = try Client(path: path())
        XCTAssertEqual(reader.readLine(), Self.hello)
        XCTAssertTrue(waitUntil { server.subscriberCount == 2 })

        let fillStart = ContinuousClock.now
        var next = 0
        func sendBatch() {
            for _ in 0..<100 {
                server.broadcast(Self.line(next))
                next += 1
            }
            for _ in 0..<100 where reader.readLine() == nil { break }
        }
        for _ in 0..<30 { sendBatch() }  // 600 kB: more than the stuck socket can buffer
        XCTAssertTrue(waitUntil(.seconds(120)) { server.disconnectedStuck == 1 }, "stuck subscriber disconnected")
        let disconnectedAfter = ContinuousClock.now - fillStart
        XCTAssertGreaterThanOrEqual(disconnectedAfter, stuckAfter, "not before stuckAfter")
        XCTAssertEqual(server.subscriberCount, 1)
        XCTAssertTrue(stuck.drainsToEOF(timeout: .seconds(30)), "the stuck client's connection was closed")

        // The other subscriber carries on.
        let before = next
        for _ in 0..<5 { sendBatch() }
        XCTAssertEqual(server.disconnectedStuck, 1)
        server.broadcast(Self.line(next))
        XCTAssertEqual(reader.readLine().flatMap(Self.number), next)
        XCTAssertGreaterThan(next, before)
    }

    private static func errorRecord(_ line: String) -> [String: Any]? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              object["type"] as? String == "error" else { return nil }
        return object
    }

    /// A subscriber that reads nothing is told why before it is cut off: its last line is an `error` record.
    func testStuckSubscriberGetsAnErrorRecordBeforeTheEnd() throws {
        let server = try makeServer(path(), .init(queueLimit: 64, stuckAfter: .milliseconds(300), farewellTimeout: .seconds(60)))
        let stuck = try Client(path: path())
        XCTAssertTrue(waitUntil { server.subscriberCount == 1 })
        var next = 0
        // Keep lines coming until the server gives up on the subscriber (which reads nothing meanwhile).
        XCTAssertTrue(waitUntil(.seconds(60)) {
            for _ in 0..<50 {
                server.broadcast(Self.line(next))
                next += 1
            }
            return server.disconnectedStuck == 1
        }, "the subscriber that reads nothing was given up on")
        var lines: [String] = []
        while let line = stuck.readLine(timeout: .seconds(10)) { lines.append(line) }
        XCTAssertTrue(stuck.sawEOF, "then disconnected")
        XCTAssertEqual(lines.first, Self.hello)
        let farewell = try XCTUnwrap(lines.last.flatMap(Self.errorRecord), "last line: \(lines.last ?? "none")")
        XCTAssertEqual(farewell["reason"] as? String, "too slow")
        XCTAssertGreaterThan(farewell["dropped"] as? Int ?? 0, 0)
        // Everything before it is whole: the hello, numbered lines and lag records.
        for line in lines.dropFirst().dropLast() {
            XCTAssertTrue(Self.number(line) != nil || Self.lagCount(line) != nil, "unexpected line \(line)")
        }
    }

    /// A subscriber that keeps reading, only too slowly, is told it lags (while it lags, not minutes later) and is
    /// never cut off, however long `stuckAfter` has passed.
    func testSlowReaderIsToldItLagsAndStaysConnected() throws {
        let server = try makeServer(path(), .init(queueLimit: 16, stuckAfter: .seconds(3)))
        let slow = try Client(path: path())
        XCTAssertEqual(slow.readLine(), Self.hello)
        let producing = Flag()
        let producer = Thread {
            var n = 0
            while !producing.isSet {
                for _ in 0..<20 {
                    server.broadcast(Self.line(n))
                    n += 1
                }
                usleep(10_000)  // about 2000 lines/s
            }
        }
        producer.start()
        defer { producing.set() }
        // Reads one line every 5 ms (200 lines/s, far behind) for more than twice `stuckAfter`, and until it has
        // seen three lag records. A socket read takes up to some 80 buffered lines at once, so the server sees the
        // reader's progress only every 80 lines: paced slower, a loaded machine could stretch that near `stuckAfter`.
        var lags = 0, numbered = 0, errors: [String] = []
        let started = ContinuousClock.now
        while lags < 3 || ContinuousClock.now - started < .seconds(7), ContinuousClock.now - started < .seconds(60),
              let line = slow.readLine(timeout: .seconds(10)) {
            if Self.lagCount(line) != nil { lags += 1 }
            if Self.number(line) != nil { numbered += 1 }
            if Self.errorRecord(line) != nil { errors.append(line) }
            usleep(5_000)
        }
        XCTAssertGreaterThanOrEqual(lags, 3, "lag records while it falls behind (after \(numbered) lines)")
        XCTAssertEqual(errors, [])
        XCTAssertFalse(slow.sawEOF)
        XCTAssertEqual(server.disconnectedStuck, 0, "a reader that reads is not stuck")
        XCTAssertEqual(server.subscriberCount, 1)
    }

    /// Beyond `maxSubscribers`, a new connection gets an `error` record and is closed; those connected are unaffected.
    func testSubscribersBeyondTheCapAreToldAndClosed() throws {
        let server = try makeServer(path(), .init(maxSubscribers: 2))
        let first = try Client(path: path()), second = try Client(path: path())
        XCTAssertEqual(first.readLine(), Self.hello)
        XCTAssertEqual(second.readLine(), Self.hello)
        let third = try Client(path: path())
        let refusal = try XCTUnwrap(third.readLine().flatMap(Self.errorRecord))
        XCTAssertEqual(refusal["reason"] as? String, "too many subscribers")
        XCTAssertEqual(refusal["limit"] as? Int, 2)
        XCTAssertNil(third.readLine())
        XCTAssertTrue(third.sawEOF)
        XCTAssertEqual(server.refusedOverLimit, 1)
        server.broadcast(Self.line(7))
        XCTAssertEqual(first.readLine().flatMap(Self.number), 7)
        XCTAssertEqual(second.readLine().flatMap(Self.number), 7)
        // A freed place is taken again.
        first.close()
        XCTAssertTrue(waitUntil { server.subscriberCount == 1 })
        let fourth = try Client(path: path())
        XCTAssertEqual(fourth.readLine(), Self.hello)
    }

    /// A deleted socket file is made anew, and clients reach the server again; those connected never noticed.
    func testDeletedSocketFileIsMadeAnew() throws {
        let server = try makeServer(path())
        let connected = try Client(path: path())
        XCTAssertEqual(connected.readLine(), Self.hello)
        XCTAssertEqual(unlink(path()), 0)
        XCTAssertThrowsError(try Client(path: path()))
        server.checkSocketFile()
        var again: Client?
        XCTAssertTrue(waitUntil { again = try? Client(path: path()); return again != nil }, "the socket file was made anew")
        XCTAssertEqual(again?.readLine(), Self.hello)
        server.broadcast(Self.line(1))
        XCTAssertEqual(connected.readLine().flatMap(Self.number), 1)
        XCTAssertEqual(again?.readLine().flatMap(Self.number), 1)
    }

    // MARK: 4

    func testStaleSocketReplacedLiveOrForeignPathRefused() throws {
        // Stale: a socket file whose listener is gone.
        let stalePath = path("stale.sock")
        try Client.leaveStaleSocket(at: stalePath)
        var info = stat()
        XCTAssertEqual(lstat(stalePath, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFSOCK)
        let server = try makeServer(stalePath)
        XCTAssertEqual(try Client(path: stalePath).readLine(), Self.hello)

        // Live: refused, and the running server is untouched.
        XCTAssertThrowsError(try SocketServer(path: stalePath, options: .init(), hello: { "" })) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(stalePath), message)
            XCTAssertTrue(message.contains("another process is listening"), message)
        }
        XCTAssertEqual(try Client(path: stalePath).readLine(), Self.hello)
        server.broadcast(Self.line(1))

        // A regular file is never replaced.
        let filePath = path("file.sock")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: filePath))
        XCTAssertThrowsError(try SocketServer(path: filePath, options: .init(), hello: { "" })) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(filePath) && message.contains("not a socket"), message)
        }
        XCTAssertEqual(try String(contentsOfFile: filePath, encoding: .utf8), "keep me")

        // A missing directory names the path too.
        XCTAssertThrowsError(try SocketServer(path: path("missing/sink.sock"), options: .init(), hello: { "" })) { error in
            XCTAssertTrue(error is SinkError)
            XCTAssertEqual("\(error)", "cannot create socket at \(path("missing/sink.sock")): no such file or directory")
        }

        // An unwritable directory. Root ignores permissions, so drop this thread's filesystem uid.
        let locked = path("locked")
        XCTAssertEqual(mkdir(locked, 0o555), 0)
        chmod(locked, 0o555)
        let lockedPath = locked + "/sink.sock"
        let message: String? = try FilesystemUser.asNobodyIfRoot {
            do {
                _ = try SocketServer(path: lockedPath, options: .init(), hello: { "" })
                return nil
            } catch let error as SinkError {
                return error.message
            } catch {
                return "not a SinkError: \(error)"
            }
        }
        if let message {
            XCTAssertEqual(message, "cannot create socket at \(lockedPath): permission denied")
        } else {
            XCTFail("bound a socket in a read-only directory")
        }
    }

    // MARK: 5

    func testModeAndGroupApplied() throws {
        let defaultPath = path("default.sock")
        _ = try makeServer(defaultPath)
        var info = stat()
        XCTAssertEqual(stat(defaultPath, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o660)

        let privatePath = path("private.sock")
        _ = try makeServer(privatePath, .init(mode: 0o600))
        XCTAssertEqual(stat(privatePath, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o600)

        // Group: as root any group can be set, so pick one that is not ours; otherwise our primary group.
        var target = getegid()
        if geteuid() == 0 {
            for name in ["daemon", "nogroup", "adm", "users"] {
                if let entry = getgrnam(name), entry.pointee.gr_gid != getegid() {
                    target = entry.pointee.gr_gid
                    break
                }
            }
        }
        guard let entry = getgrgid(target) else { throw XCTSkip("no name for group \(target)") }
        let groupName = String(cString: entry.pointee.gr_name)
        let groupPath = path("group.sock")
        _ = try makeServer(groupPath, .init(mode: 0o640, group: groupName))
        XCTAssertEqual(stat(groupPath, &info), 0)
        XCTAssertEqual(info.st_gid, target, "group \(groupName)")
        XCTAssertEqual(info.st_mode & 0o7777, 0o640)

        let numericPath = path("numeric.sock")
        _ = try makeServer(numericPath, .init(group: String(target)))
        XCTAssertEqual(stat(numericPath, &info), 0)
        XCTAssertEqual(info.st_gid, target)

        let unknownPath = path("unknown.sock")
        XCTAssertThrowsError(try SocketServer(path: unknownPath, options: .init(group: "no-such-group-sightline"), hello: { "" })) { error in
            XCTAssertTrue("\(error)".contains("no-such-group-sightline"), "\(error)")
        }
        XCTAssertNotEqual(lstat(unknownPath, &info), 0, "nothing left behind")
    }

    // MARK: 6

    func testCloseFlushesQueuedLinesAndRemovesSocket() throws {
        let socketPath = path()
        let server = try makeServer(socketPath, .init(queueLimit: 10_000))
        let client = try Client(path: socketPath)
        XCTAssertEqual(client.readLine(), Self.hello)

        let total = 5_000  // 1 MB: far more than the socket buffers, so most is still queued at close()
        for n in 0..<total { server.broadcast(Self.line(n)) }
        let closed = Flag()
        let closeTime = Locked<Duration>(.zero)
        DispatchQueue.global().async {
            let t0 = ContinuousClock.now
            server.close(flushTimeout: .seconds(300))
            closeTime.value = ContinuousClock.now - t0
            closed.set()
        }
        usleep(200_000)  // close() is now waiting on this client
        XCTAssertFalse(closed.isSet, "close() returned before the queued lines were read")

        var received = 0
        while let line = client.readLine(timeout: .seconds(120)) {
            XCTAssertEqual(Self.number(line), received)
            received += 1
        }
        XCTAssertEqual(received, total, "every queued line arrived before the connection closed")
        XCTAssertTrue(client.sawEOF)
        XCTAssertTrue(waitUntil { closed.isSet })
        XCTAssertLessThan(closeTime.value, .seconds(300), "close() returned once the lines were read, not at its flush timeout")
        var info = stat()
        XCTAssertNotEqual(lstat(socketPath, &info), 0, "socket file removed")
        server.broadcast(Self.line(0))  // ignored after close
        server.close()  // idempotent
    }

    func testCloseGivesUpOnStalledSubscriberAfterTimeout() throws {
        let socketPath = path()
        let server = try makeServer(socketPath, .init(queueLimit: 10_000))
        let stalled = try Client(path: socketPath)
        XCTAssertEqual(stalled.readLine(), Self.hello)
        for n in 0..<5_000 { server.broadcast(Self.line(n)) }
        let t0 = ContinuousClock.now
        server.close(flushTimeout: .milliseconds(300))
        let took = ContinuousClock.now - t0
        XCTAssertGreaterThanOrEqual(took, .milliseconds(250))
        XCTAssertLessThan(took, .seconds(60), "close() gave up on the stalled subscriber")
        XCTAssertTrue(stalled.drainsToEOF(timeout: .seconds(30)))
        XCTAssertEqual(server.subscriberCount, 0)
    }

    // MARK: Misbehaving subscribers

    func testSubscribersThatTalkOrHangUpAreHarmless() throws {
        let server = try makeServer(path())
        let reader = try Client(path: path())
        XCTAssertEqual(reader.readLine(), Self.hello)

        let talker = try Client(path: path())
        XCTAssertEqual(talker.readLine(), Self.hello)
        talker.send(String(repeating: "ignored input\n", count: 20_000))  // 280 kB the server must drain
        talker.shutdownWrite()  // half-closed: still a subscriber
        var refusals = 0

        for round in 0..<3 {
            let quitter = try Client(path: path())
            XCTAssertTrue(waitUntil { server.subscriberCount == 3 })
            for n in 0..<200 { server.broadcast(Self.line(round * 1000 + n)) }
            quitter.close()  // with lines waiting: EPIPE/ECONNRESET on the server side, never SIGPIPE
            for client in [reader, talker] {
                var got: [Int?] = []
                while got.count < 200, let line = client.readLine() {
                    // The talker's lines were invalid requests: the first ten are answered with `error` records.
                    if client === talker, line.hasPrefix(#"{"type":"error","reason":"invalid request""#) {
                        refusals += 1
                        continue
                    }
                    got.append(Self.number(line))
                }
                XCTAssertEqual(got, (0..<200).map { round * 1000 + $0 })
            }
            XCTAssertTrue(waitUntil { server.subscriberCount == 2 }, "hung-up subscriber dropped")
        }
        XCTAssertEqual(refusals, 10, "a client that keeps sending garbage is answered ten times, then ignored")
        talker.close()
        XCTAssertTrue(waitUntil { server.subscriberCount == 1 })
        server.broadcast(Self.line(42))
        XCTAssertEqual(reader.readLine().flatMap(Self.number), 42)
        XCTAssertEqual(server.disconnectedStuck, 0)
    }

    // MARK: Socket activation

    func testListeningDescriptorInit() throws {
        let socketPath = path("activated.sock")
        let fd = try Client.listeningSocket(at: socketPath)
        let server = try SocketServer(listeningDescriptor: fd, options: .init(), hello: { Self.hello })
        servers.append(server)
        let client = try Client(path: socketPath)
        XCTAssertEqual(client.readLine(), Self.hello)
        server.broadcast(Self.line(7))
        XCTAssertEqual(client.readLine().flatMap(Self.number), 7)
        server.close()
        var info = stat()
        XCTAssertEqual(lstat(socketPath, &info), 0, "a socket the server did not create is left alone")
        XCTAssertEqual(fcntl(fd, F_GETFD), -1, "the descriptor was closed")

        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&fds), 0)
        defer { fds.forEach { _ = Glibc.close($0) } }
        XCTAssertThrowsError(try SocketServer(listeningDescriptor: fds[0], options: .init(), hello: { "" })) { error in
            XCTAssertTrue("\(error)".contains("descriptor \(fds[0])"), "\(error)")
        }
    }
}

// MARK: - Helpers

/// A blocking test client that reads whole lines with a timeout.
final class Client: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private(set) var sawEOF = false

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var (address, length) = Self.address(path)
        let status = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        guard status == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SinkError("connect \(path): \(String(cString: strerror(code)))")
        }
    }

    private let closed = Flag()

    deinit { if !closed.isSet { Glibc.close(fd) } }

    static func address(_ path: String) -> (sockaddr_un, socklen_t) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return (address, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1))
    }

    /// A socket bound at `path` and listening.
    static func listeningSocket(at path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var (address, length) = address(path)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 8) == 0 else { throw SinkError("bind \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    /// What a crashed server leaves: a socket file nobody listens on.
    static func leaveStaleSocket(at path: String) throws {
        Glibc.close(try listeningSocket(at: path))
    }

    /// The next line (with its newline), or nil on timeout or end of stream.
    func readLine(timeout: Duration = .seconds(5)) -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[start...newline], as: UTF8.self)
                start = newline + 1
                if start > 1 << 20 {
                    buffer.removeFirst(start)
                    start = 0
                }
                return line
            }
            if sawEOF { return nil }
            guard fill(until: deadline) else { return nil }
        }
    }

    /// Reads (and discards) until the server closes the connection.
    func drainsToEOF(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !sawEOF {
            buffer.removeAll(keepingCapacity: true)
            start = 0
            guard fill(until: deadline) else { return sawEOF }
        }
        return true
    }

    private func fill(until deadline: ContinuousClock.Instant) -> Bool {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { return false }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let millis = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
        guard poll(&descriptor, 1, millis) > 0 else { return false }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &chunk, chunk.count, 0)
        if n <= 0 {
            sawEOF = true
            return true
        }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    func send(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            bytes = bytes.dropFirst(n)
        }
    }

    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
    func shutdown() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    func close() {
        if !closed.isSet { Glibc.close(fd) }
        closed.set()
    }
}

final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

final class Flag: @unchecked Sendable {
    private let state = Locked(false)
    var isSet: Bool { state.value }
    func set() { state.value = true }
}

/// Runs a body with this thread's filesystem uid set to nobody when running as root, so that
/// directory permissions apply. (setfsuid is per thread on Linux; glibc does not broadcast it.)
enum FilesystemUser {
    private typealias SetFSUID = @convention(c) (UInt32) -> Int32

    static func asNobodyIfRoot<R>(_ body: () throws -> R) throws -> R {
        guard geteuid() == 0 else { return try body() }
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setfsuid") else {
            throw XCTSkip("running as root without setfsuid: cannot test permission errors")
        }
        let setfsuid = unsafeBitCast(symbol, to: SetFSUID.self)
        _ = setfsuid(65534)
        defer { _ = setfsuid(0) }
        guard setfsuid(UInt32.max) == 65534 else { throw XCTSkip("setfsuid not permitted") }
        return try body()
    }
}
