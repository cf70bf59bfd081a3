@testable import Daemon
import TestSupport
import XCTest

/// The source supervisor's rules, driven event by event with made-up times and a chosen random source:
/// no processes, threads or sleeps.
final class SourceSupervisorTests: XCTestCase {
    typealias Supervisor = SourceSupervisor
    let t0 = ContinuousClock.now
    let file = SourceOptions(name: "file", input: "/media/walk.avi")
    let camera = SourceOptions(name: "cam", input: "rtsp://cam/a")

    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .seconds(seconds) }

    func supervisor(_ sources: [SourceOptions], heartbeat: Duration? = nil, reconnectMax: Duration = .seconds(30),
                    random: any RandomNumberGenerator & Sendable = SplitMix64(seed: 7)) -> Supervisor {
        Supervisor(sources: sources, settings: .init(heartbeat: heartbeat, reconnectMax: reconnectMax), now: t0, random: random)
    }

    /// The attempt of the `open` for `name` among `actions`.
    func attempt(_ name: String, in actions: [Supervisor.Action], file: StaticString = #filePath, line: UInt = #line) -> Int? {
        for case .open(let options, let attempt) in actions where options.name == name { return attempt }
        XCTFail("no open for \(name) in \(actions)", file: file, line: line)
        return nil
    }

    /// The retry delay of the `source_down` for `name` among `actions`.
    func retry(_ name: String, in actions: [Supervisor.Action], file: StaticString = #filePath, line: UInt = #line) -> Double? {
        for case .announceDown(name, .failed(_, let retryIn)) in actions { return retryIn }
        XCTFail("no source_down with a retry for \(name) in \(actions)", file: file, line: line)
        return nil
    }

    /// The attempt `name` is being opened as.
    func opening(_ s: Supervisor, _ name: String, file: StaticString = #filePath, line: UInt = #line) -> Int? {
        guard case .opening(let attempt)? = s.sources[name]?.state else {
            XCTFail("\(name) is not opening: \(String(describing: s.sources[name]?.state))", file: file, line: line)
            return nil
        }
        return attempt
    }

    /// Ticks at `time`, and `name` (opened by this tick or an earlier one) opens as `lane`.
    func bringUp(_ s: inout Supervisor, _ name: String, lane: Int, at time: Double, file: StaticString = #filePath, line: UInt = #line) {
        _ = s.handle(.tick, now: at(time))
        guard let attempt = opening(s, name, file: file, line: line) else { return }
        XCTAssertEqual(s.handle(.opened(source: name, attempt: attempt, lane: lane), now: at(time)),
                       [.announceUp(source: name, input: s.sources[name]?.options.input ?? "?")], file: file, line: line)
    }

    // MARK: Backoff

    func testOpenFailingRepeatedlyBacksOff1248UpToTheMaximumEachWithin20Percent() {
        var s = supervisor([camera], reconnectMax: .seconds(10))
        var now = t0
        var delays: [Double] = []
        for _ in 0..<6 {
            let opened = s.handle(.tick, now: now)
            guard let attempt = attempt("cam", in: opened) else { return }
            let down = s.handle(.openFailed(source: "cam", attempt: attempt, reason: "connection refused"), now: now)
            guard let delay = retry("cam", in: down) else { return }
            XCTAssertEqual(down, [.announceDown(source: "cam", .failed(reason: "connection refused", retryIn: delay))])
            XCTAssertEqual(s.status(now: now), "cam down")
            delays.append(delay)
            // Not a moment before the retry is due, then at once.
            XCTAssertEqual(s.nextDeadline(), now + .seconds(delay))
            XCTAssertEqual(s.handle(.tick, now: now + .seconds(delay) - .milliseconds(1)), [], "nothing before the retry is due")
            now = now + .seconds(delay)
        }
        for (delay, base) in zip(delays, [1.0, 2, 4, 8, 10, 10]) {
            XCTAssertTrue((base * 0.8...base * 1.2).contains(delay), "\(delay) is \(base) s +-20 %: \(delays)")
        }
    }

    func testJitterSpansItsWholeRangeAndNoMore() {
        var lowest = supervisor([camera], random: Constant(0))
        var highest = supervisor([camera], random: Constant(.max))
        XCTAssertEqual(lowest.backoff(failures: 3), 3.2, accuracy: 1e-9)
        XCTAssertEqual(highest.backoff(failures: 3), 4.8, accuracy: 1e-9)
        XCTAssertEqual(lowest.backoff(failures: 1000), 24, accuracy: 1e-9, "capped at reconnect_max_seconds (30) -20 %")
        var s = supervisor([camera])
        let draws = (0..<2000).map { _ in s.backoff(failures: 3) }
        XCTAssertTrue(draws.allSatisfy { (3.2...4.8).contains($0) }, "\(draws.filter { !(3.2...4.8).contains($0) })")
        XCTAssertLessThan(draws.min() ?? 4, 3.3, "the draws reach the low end")
        XCTAssertGreaterThan(draws.max() ?? 4, 4.7, "the draws reach the high end")
    }

    func testFailuresResetOnlyOnceTheSourceDeliversARecord() {
        var s = supervisor([camera], random: Constant(1 << 63))  // jitter factor 1.0
        bringUp(&s, "cam", lane: 0, at: 0)
        // Opens and dies without a record: the backoff keeps growing.
        XCTAssertEqual(retry("cam", in: s.handle(.laneEnded(source: "cam", lane: 0, how: .failed(reason: "reset")), now: at(1))), 1)
        bringUp(&s, "cam", lane: 1, at: 2)
        XCTAssertEqual(retry("cam", in: s.handle(.laneEnded(source: "cam", lane: 1, how: .failed(reason: "reset")), now: at(3))), 2)
        bringUp(&s, "cam", lane: 2, at: 5)
        XCTAssertEqual(s.handle(.delivered(source: "cam"), now: at(5.5)), [])
        XCTAssertEqual(retry("cam", in: s.handle(.laneEnded(source: "cam", lane: 2, how: .failed(reason: "reset")), now: at(6))), 1,
                       "a source that delivered starts over at 1 s")
    }

    // MARK: Endings

    func testAFileThatEndsIsFinishedAndNotReopened() {
        var s = supervisor([file])
        bringUp(&s, "file", lane: 0, at: 0)
        XCTAssertEqual(s.handle(.laneEnded(source: "file", lane: 0, how: .ended(live: false)), now: at(1)),
                       [.announceDown(source: "file", .finished)])
        XCTAssertEqual(s.sources["file"]?.state, .finished)
        for t in stride(from: 2.0, through: 3600, by: 100) { XCTAssertEqual(s.handle(.tick, now: at(t)), [], "never reopened") }
        XCTAssertNil(s.nextDeadline(), "nothing to wake up for")
        XCTAssertEqual(s.status(now: at(3600)), "file finished")
    }

    func testALiveStreamThatEndsIsReopenedAfterItsBackoff() {
        var s = supervisor([camera])
        bringUp(&s, "cam", lane: 0, at: 0)
        let down = s.handle(.laneEnded(source: "cam", lane: 0, how: .ended(live: true)), now: at(1))
        guard let delay = retry("cam", in: down) else { return }
        XCTAssertEqual(down, [.announceDown(source: "cam", .failed(reason: "end of stream", retryIn: delay))])
        XCTAssertEqual(s.handle(.tick, now: at(1 + delay - 0.01)), [])
        XCTAssertNotNil(attempt("cam", in: s.handle(.tick, now: at(1 + delay))))
    }

    func testALaneEndingOfAnotherRunIsIgnored() {
        var s = supervisor([camera])
        bringUp(&s, "cam", lane: 4, at: 0)
        XCTAssertEqual(s.handle(.laneEnded(source: "cam", lane: 3, how: .ended(live: true)), now: at(1)), [])
        XCTAssertEqual(s.handle(.laneEnded(source: "other", lane: 4, how: .ended(live: true)), now: at(1)), [])
        XCTAssertEqual(s.sources["cam"]?.state, .up(lane: 4))
    }

    // MARK: Heartbeats

    func testHeartbeatsOfAnUpAndADownSource() {
        var s = supervisor([camera], heartbeat: .seconds(10))
        bringUp(&s, "cam", lane: 3, at: 0)
        for t in stride(from: 0.5, through: 6, by: 0.5) { _ = s.handle(.delivered(source: "cam"), now: at(t)) }
        XCTAssertEqual(s.nextDeadline(), at(16), "heartbeat_seconds after the last record")
        XCTAssertEqual(s.handle(.tick, now: at(15.9)), [])
        guard case .heartbeat("cam", 3, let fps)? = s.handle(.tick, now: at(16)).first else {
            return XCTFail("a heartbeat at 16 s")
        }
        XCTAssertEqual(fps, 12.0 / 16, accuracy: 0.01, "12 records in 16 s")
        XCTAssertEqual(s.nextDeadline(), at(26), "and the next one 10 s later")
        XCTAssertEqual(s.handle(.tick, now: at(20)), [])
        // Down and retrying: heartbeats (state down) go on, each heartbeat_seconds after the last thing sent for it
        // (a source_down or a heartbeat).
        var now = 20.0
        _ = s.handle(.laneEnded(source: "cam", lane: 3, how: .failed(reason: "reset")), now: at(now))
        var beats: [Double] = [], downs: [Double] = [now]
        while now < 120 {
            now += 0.25
            for action in s.handle(.tick, now: at(now)) {
                switch action {
                case .heartbeat(let name, let lane, _):
                    XCTAssertEqual(name, "cam")
                    XCTAssertNil(lane, "down")
                    beats.append(now)
                case .open(_, let attempt):
                    _ = s.handle(.openFailed(source: "cam", attempt: attempt, reason: "refused"), now: at(now))
                    downs.append(now)
                default:
                    XCTFail("\(action)")
                }
            }
        }
        XCTAssertFalse(beats.isEmpty, "heartbeats while down")
        for beat in beats {
            let last = (downs + beats).filter { $0 < beat }.max() ?? 0
            XCTAssertTrue((10..<10.25).contains(beat - last), "heartbeat at \(beat), \(beat - last) s after the last record: \(downs) \(beats)")
        }
    }

    func testNoHeartbeatsWhenTurnedOff() {
        var s = supervisor([camera], heartbeat: nil)
        bringUp(&s, "cam", lane: 0, at: 0)
        XCTAssertEqual(s.handle(.tick, now: at(100_000)), [])
        XCTAssertNil(s.nextDeadline())
    }

    // MARK: Reload

    func testReloadLeavesUnchangedSourcesAloneAndRestartsRemovesAndAddsTheRest() {
        let same = SourceOptions(name: "same", input: "/dev/video0")
        let picky = SourceOptions(name: "picky", input: "/dev/video1")
        let moved = SourceOptions(name: "moved", input: "rtsp://cam/a")
        let gone = SourceOptions(name: "gone", input: "rtsp://cam/b")
        let added = SourceOptions(name: "added", input: "rtsp://cam/c")
        var s = supervisor([same, picky, moved, gone])
        for (lane, name) in ["gone", "moved", "picky", "same"].enumerated() { bringUp(&s, name, lane: lane, at: 0) }

        var stricter = picky
        stricter.thresholds = SourceThresholds(defaultScore: 0.9)
        var elsewhere = moved
        elsewhere.input = "rtsp://cam/z"
        elsewhere.fpsLimit = 2
        let actions = s.handle(.reload(sources: [same, stricter, elsewhere, added], settings: .init(heartbeat: .seconds(5), reconnectMax: .seconds(60))),
                               now: at(1))
        guard let addedAttempt = attempt("added", in: actions) else { return }
        XCTAssertEqual(actions, [.open(added, attempt: addedAttempt), .removeLane(0), .removeLane(1)],
                       "the new source opens; the changed and the removed one drain first; nothing else happens")
        XCTAssertEqual(s.sources["same"]?.state, .up(lane: 3), "unchanged")
        XCTAssertEqual(s.sources["picky"]?.state, .up(lane: 2), "a threshold change restarts nothing")
        XCTAssertEqual(s.sources["picky"]?.options, stricter, "but a later reopen uses the new thresholds")
        XCTAssertEqual(s.sources["moved"]?.state,
                       .retiring(lane: 1, replacement: elsewhere, reason: "restarting for a reload: input, fps_limit changed"))
        XCTAssertEqual(s.sources["gone"]?.state, .retiring(lane: 0, replacement: nil, reason: "removed from the configuration by a reload"))
        XCTAssertEqual(s.settings, .init(heartbeat: .seconds(5), reconnectMax: .seconds(60)))
        XCTAssertEqual(s.status(now: at(1)), "same 0.0 fps, picky 0.0 fps, moved 0.0 fps, added down", "configuration order")

        // The removed source goes down once its last record is out, and is forgotten.
        XCTAssertEqual(s.handle(.laneEnded(source: "gone", lane: 0, how: .removed), now: at(2)),
                       [.announceDown(source: "gone", .stopped(reason: "removed from the configuration by a reload", replaced: false))])
        XCTAssertNil(s.sources["gone"])
        // The restarted one goes down, and only then does its replacement open.
        let restart = s.handle(.laneEnded(source: "moved", lane: 1, how: .removed), now: at(2))
        guard let movedAttempt = attempt("moved", in: restart) else { return }
        XCTAssertEqual(restart, [.announceDown(source: "moved", .stopped(reason: "restarting for a reload: input, fps_limit changed", replaced: true)),
                                 .open(elsewhere, attempt: movedAttempt)])
        XCTAssertEqual(s.handle(.opened(source: "moved", attempt: movedAttempt, lane: 0), now: at(2)),
                       [.announceUp(source: "moved", input: "rtsp://cam/z")])
        XCTAssertEqual(s.handle(.reload(sources: [same, stricter, elsewhere, added], settings: s.settings), now: at(3)), [],
                       "reloading the same file again changes nothing")
    }

    func testAThresholdOnlyReloadReachesTheNextRetry() {
        var s = supervisor([camera], random: Constant(1 << 63))
        bringUp(&s, "cam", lane: 0, at: 0)
        var stricter = camera
        stricter.thresholds = SourceThresholds(perLabel: ["person": 0.8])
        XCTAssertEqual(s.handle(.reload(sources: [stricter], settings: s.settings), now: at(1)), [])
        _ = s.handle(.laneEnded(source: "cam", lane: 0, how: .ended(live: true)), now: at(2))
        XCTAssertEqual(s.handle(.tick, now: at(3)), [.open(stricter, attempt: 2)])
    }

    func testReloadReplacesASourceThatIsNotRunningAtOnce() {
        var s = supervisor([camera], random: Constant(1 << 63))
        guard let first = attempt("cam", in: s.handle(.tick, now: at(0))) else { return }
        _ = s.handle(.openFailed(source: "cam", attempt: first, reason: "refused"), now: at(0))
        guard let second = attempt("cam", in: s.handle(.tick, now: at(1))) else { return }
        var moved = camera
        moved.input = "rtsp://cam/b"
        // Changed while its second open is under way: the new settings open at once, with no backoff behind them.
        let actions = s.handle(.reload(sources: [moved], settings: s.settings), now: at(1.5))
        guard let third = attempt("cam", in: actions) else { return }
        XCTAssertEqual(actions, [.open(moved, attempt: third)])
        XCTAssertEqual(s.sources["cam"]?.failures, 0)
        XCTAssertEqual(s.handle(.opened(source: "cam", attempt: second, lane: 7), now: at(2)), [.decline(lane: 7)], "the old open is declined")
        XCTAssertEqual(s.handle(.openFailed(source: "cam", attempt: second, reason: "refused"), now: at(2)), [], "or its failure ignored")
        XCTAssertEqual(s.handle(.opened(source: "cam", attempt: third, lane: 8), now: at(2)), [.announceUp(source: "cam", input: "rtsp://cam/b")])
        // Removed while down: it just goes (it already said source_down).
        _ = s.handle(.laneEnded(source: "cam", lane: 8, how: .failed(reason: "reset")), now: at(3))
        XCTAssertEqual(s.handle(.reload(sources: [], settings: s.settings), now: at(4)), [])
        XCTAssertTrue(s.sources.isEmpty)
        XCTAssertEqual(s.handle(.tick, now: at(100)), [])
    }

    func testAFinishedFileChangedByAReloadOpensAgain() {
        var s = supervisor([file])
        bringUp(&s, "file", lane: 0, at: 0)
        _ = s.handle(.laneEnded(source: "file", lane: 0, how: .ended(live: false)), now: at(1))
        var paced = file
        paced.realtime = true
        XCTAssertEqual(s.handle(.reload(sources: [paced], settings: s.settings), now: at(2)), [.open(paced, attempt: 2)])
    }

    // MARK: Order around records

    func testUpComesBeforeTheFirstRecordAndDownAfterTheLastEvenAcrossReloads() {
        var s = supervisor([camera])
        guard let first = attempt("cam", in: s.handle(.tick, now: at(0))) else { return }
        // The lane is announced while `opened` is handled, before its capture starts.
        XCTAssertEqual(s.handle(.opened(source: "cam", attempt: first, lane: 0), now: at(0)), [.announceUp(source: "cam", input: camera.input)])
        var moved = camera
        moved.input = "rtsp://cam/b"
        XCTAssertEqual(s.handle(.reload(sources: [moved], settings: s.settings), now: at(1)), [.removeLane(0)],
                       "no source_down while the old lane may still emit")
        for t in [1.1, 1.2] { XCTAssertEqual(s.handle(.delivered(source: "cam"), now: at(t)), [], "the old run's last records") }
        // A second reload while it drains: one removal is enough, and the newest settings replace it.
        moved.input = "rtsp://cam/c"
        XCTAssertEqual(s.handle(.reload(sources: [moved], settings: s.settings), now: at(1.3)), [])
        XCTAssertEqual(s.handle(.tick, now: at(1.4)), [], "nothing opens while it drains")
        let ended = s.handle(.laneEnded(source: "cam", lane: 0, how: .failed(reason: "closed")), now: at(1.5))
        guard let next = attempt("cam", in: ended) else { return }
        XCTAssertEqual(ended, [.announceDown(source: "cam", .stopped(reason: "restarting for a reload: input changed", replaced: true)),
                               .open(moved, attempt: next)], "down, then the replacement opens")
        XCTAssertEqual(s.handle(.opened(source: "cam", attempt: next, lane: 1), now: at(2)), [.announceUp(source: "cam", input: "rtsp://cam/c")])
    }

    // MARK: Shutdown

    func testAfterShutdownNothingOpensOrIsAnnounced() {
        var s = supervisor([camera, file], heartbeat: .seconds(1))
        bringUp(&s, "file", lane: 0, at: 0)
        guard let pending = opening(s, "cam") else { return }
        XCTAssertEqual(s.handle(.shutdown, now: at(1)), [])
        XCTAssertEqual(s.handle(.opened(source: "cam", attempt: pending, lane: 1), now: at(1)), [.decline(lane: 1)],
                       "an open that completes while stopping is closed unused")
        XCTAssertEqual(s.handle(.laneEnded(source: "file", lane: 0, how: .ended(live: false)), now: at(1)), [])
        XCTAssertEqual(s.handle(.tick, now: at(60)), [], "no retries, no heartbeats")
        XCTAssertEqual(s.handle(.reload(sources: [], settings: s.settings), now: at(61)), [])
        XCTAssertNil(s.nextDeadline())
    }

    func isHeartbeat(_ action: Supervisor.Action) -> Bool { if case .heartbeat = action { true } else { false } }
}

/// The same draw every time: 0 is the lowest jitter, `.max` the highest.
struct Constant: RandomNumberGenerator, Sendable {
    let value: UInt64
    init(_ value: UInt64) { self.value = value }
    mutating func next() -> UInt64 { value }
}
