import Foundation
@testable import FrameRing
import Values
import XCTest

final class FrameRingTests: XCTestCase {
    /// A frame whose first pixel byte encodes nothing in particular; identity is (source, sequence).
    static func frame(_ source: String, _ sequence: Int, pool: PixelBufferPool) -> Frame {
        Frame(sourceID: source, sequence: sequence, pts: Double(sequence), captureTime: Date(), captureInstant: .now,
              pixels: pool.take(width: 4, height: 4))
    }

    func testLosslessUnderConcurrencyLosesAndDuplicatesNothing() {
        let ring = FrameRing<String>()
        let pool = PixelBufferPool()
        let sources = 3, perSource = 3000, consumers = 4
        let lanes = (0..<sources).map { _ in ring.addSource(capacity: 4, policy: .lossless) }
        ring.seal()
        let seen = Locked<[String: [Int]]>([:])
        let orders = Locked<[Int: [Int]]>([:])
        let group = DispatchGroup()
        for c in 0..<consumers {
            group.enter()
            Thread {
                while let item = ring.next() {
                    guard case .frame(let job) = item else { continue }
                    seen.mutate { $0[job.frame.sourceID, default: []].append(job.frame.sequence) }
                    orders.mutate { $0[job.lane, default: []].append(job.order) }
                    XCTAssertEqual(job.droppedBefore, 0)
                    job.frame.pixels.recycle()
                }
                group.leave()
            }.start()
            _ = c
        }
        for (s, lane) in lanes.enumerated() {
            group.enter()
            Thread {
                for i in 0..<perSource { XCTAssertTrue(ring.push(Self.frame("s\(s)", i, pool: pool), lane: lane)) }
                ring.close(lane: lane, ending: "end")
                group.leave()
            }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success, "ring deadlocked")
        for s in 0..<sources {
            XCTAssertEqual(seen.value["s\(s)"]?.sorted(), Array(0..<perSource), "source s\(s): every frame exactly once")
        }
        for lane in lanes { XCTAssertEqual(orders.value[lane]?.sorted(), Array(0..<perSource)) }
    }

    func testLosslessProducerWaitsWhenFull() {
        let ring = FrameRing<String>()
        let pool = PixelBufferPool()
        let lane = ring.addSource(capacity: 2, policy: .lossless)
        ring.push(Self.frame("a", 0, pool: pool), lane: lane)
        ring.push(Self.frame("a", 1, pool: pool), lane: lane)
        let pushed = Locked(false)
        Thread {
            ring.push(Self.frame("a", 2, pool: pool), lane: lane)
            pushed.mutate { $0 = true }
        }.start()
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertFalse(pushed.value, "a full lossless lane must make the producer wait")
        XCTAssertEqual(ring.next()?.dispatched?.frame.sequence, 0)
        let deadline = Date().addingTimeInterval(30)
        while !pushed.value && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertTrue(pushed.value, "the producer resumes once there is room")
        XCTAssertEqual(ring.stats(lane: lane), LaneStats(queued: 2, dropped: 0, dispatched: 1))
    }

    func testLatestDropsTheOldestAndCountsIt() {
        let ring = FrameRing<String>()
        let pool = PixelBufferPool()
        let lane = ring.addSource(capacity: 2, policy: .latest)
        for i in 0..<10 { XCTAssertTrue(ring.push(Self.frame("cam", i, pool: pool), lane: lane)) }
        XCTAssertEqual(ring.stats(lane: lane)?.dropped, 8)
        let first = ring.next()?.dispatched
        XCTAssertEqual(first?.frame.sequence, 8, "the freshest frames survive")
        XCTAssertEqual(first?.droppedBefore, 8, "the record tells how many frames were dropped before it")
        let second = ring.next()?.dispatched
        XCTAssertEqual(second?.frame.sequence, 9)
        XCTAssertEqual(second?.droppedBefore, 0)
        XCTAssertEqual(second?.order, 1)
        ring.push(Self.frame("cam", 10, pool: pool), lane: lane)
        ring.push(Self.frame("cam", 11, pool: pool), lane: lane)
        ring.push(Self.frame("cam", 12, pool: pool), lane: lane)
        XCTAssertEqual(ring.next()?.dispatched?.droppedBefore, 1)
    }

    func testWorkersTakeFromSourcesFairly() {
        let ring = FrameRing<String>()
        let pool = PixelBufferPool()
        let busy = ring.addSource(capacity: 8, policy: .lossless)
        let quiet = ring.addSource(capacity: 8, policy: .lossless)
        for i in 0..<8 { ring.push(Self.frame("busy", i, pool: pool), lane: busy) }
        for i in 0..<3 { ring.push(Self.frame("quiet", i, pool: pool), lane: quiet) }
        let taken = (0..<6).compactMap { _ in ring.next()?.dispatched?.frame.sourceID }
        XCTAssertEqual(taken, ["busy", "quiet", "busy", "quiet", "busy", "quiet"], "round-robin, not first-come")
    }

    func testStopWakesBlockedWorkersAndProducers() {
        let ring = FrameRing<String>()
        let pool = PixelBufferPool()
        let lane = ring.addSource(capacity: 1, policy: .lossless)
        ring.push(Self.frame("a", 0, pool: pool), lane: lane)
        let group = DispatchGroup()
        group.enter()
        Thread {
            XCTAssertFalse(ring.push(Self.frame("a", 1, pool: pool), lane: lane), "push after stop is refused")
            group.leave()
        }.start()
        let otherRing = FrameRing<String>()
        _ = otherRing.addSource(capacity: 1, policy: .latest)
        group.enter()
        Thread {
            XCTAssertNil(otherRing.next(), "an idle worker is released by stop")
            group.leave()
        }.start()
        Thread.sleep(forTimeInterval: 0.1)
        ring.stop()
        otherRing.stop()
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success, "stop() must release blocked threads")
    }
}

final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func mutate(_ body: (inout Value) -> Void) { lock.withLock { body(&stored) } }
}
