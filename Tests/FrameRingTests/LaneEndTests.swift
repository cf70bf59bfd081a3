import Values
import Foundation
@testable import FrameRing
import Sink
import XCTest

/// The end-of-lane protocol (FrameRing's doc comment): close -> end item after the lane's last frame ->
/// the worker's `sink.finish` -> `laneFinished` with the ending after the lane's last record.
final class LaneEndTests: XCTestCase {
    private let pool = PixelBufferPool()

    private func frame(_ source: String, _ sequence: Int) -> Frame {
        FrameRingTests.frame(source, sequence, pool: pool)
    }

    private static func record(_ frame: Frame) -> DetectionRecord {
        DetectionRecord(source: frame.sourceID, frame: frame.sequence, seq: 0, pts: frame.pts, time: Date(),
                        captureTime: frame.captureTime, width: 1, height: 1, latencyMs: 0, inferMs: 0, dropped: 0, detections: [])
    }

    func testTheEndComesAfterTheLastFrame() throws {
        let ring = FrameRing<String>()
        let lane = ring.addSource(capacity: 4, policy: .lossless)
        for i in 0..<3 { ring.push(frame("a", i), lane: lane) }
        ring.close(lane: lane, ending: "end of file")
        XCTAssertFalse(ring.push(frame("a", 3), lane: lane), "a closed lane takes no more frames")
        for order in 0..<3 { XCTAssertEqual(ring.next()?.dispatched?.order, order) }
        let end = try XCTUnwrap(ring.next()?.laneEnd)
        XCTAssertEqual(end.lane, lane)
        XCTAssertEqual(end.total, 3)
        XCTAssertEqual(end.ending, "end of file")
        XCTAssertNil(ring.stats(lane: lane), "an ended lane is gone")
        ring.seal()
        XCTAssertNil(ring.next(), "a sealed ring whose lanes have all ended is done")
    }

    func testClosingAnEmptyLaneEndsItWithNoOrders() throws {
        let ring = FrameRing<String>()
        let lane = ring.addSource(capacity: 1, policy: .latest)
        ring.close(lane: lane, ending: "failed")
        let end = try XCTUnwrap(ring.next()?.laneEnd)
        XCTAssertEqual([end.lane, end.total], [lane, 0])
        XCTAssertEqual(end.ending, "failed")
        let finished = Locked<[String]>([])
        let sink = OrderedSink<String>(emit: { _ in }, laneFinished: { lane, ending in finished.mutate { $0.append("\(lane) \(ending)") } })
        sink.finish(lane: end.lane, total: end.total, ending: end.ending)
        XCTAssertEqual(finished.value, ["\(lane) failed"], "nothing to wait for: the lane finishes at once")
    }

    func testOnlyTheFirstCloseCounts() throws {
        let ring = FrameRing<String>()
        let lane = ring.addSource(capacity: 4, policy: .lossless)
        ring.push(frame("a", 0), lane: lane)
        ring.close(lane: lane, ending: "end of stream")
        ring.close(lane: lane, ending: "removed", discardingQueued: true)
        XCTAssertEqual(ring.next()?.dispatched?.frame.sequence, 0, "the second close discarded nothing")
        XCTAssertEqual(ring.next()?.laneEnd?.ending, "end of stream")
    }

    /// The worker holding the last frame is slower than the one that takes the end: the lane still
    /// finishes only after its last record.
    func testTheLastRecordStillInAWorkerHoldsTheLaneOpen() throws {
        let ring = FrameRing<String>()
        let emitted = Locked<[String]>([])
        let sink = OrderedSink<String>(emit: { record in emitted.mutate { $0.append("record \(record.frame)") } },
                                       laneFinished: { _, ending in emitted.mutate { $0.append(ending) } })
        let lane = ring.addSource(capacity: 4, policy: .lossless)
        ring.push(frame("a", 0), lane: lane)
        ring.push(frame("a", 1), lane: lane)
        ring.close(lane: lane, ending: "down")
        let first = try XCTUnwrap(ring.next()?.dispatched)
        let last = try XCTUnwrap(ring.next()?.dispatched)
        let end = try XCTUnwrap(ring.next()?.laneEnd)
        sink.finish(lane: end.lane, total: end.total, ending: end.ending)
        sink.submit(Self.record(last.frame), lane: last.lane, order: last.order, capturedAt: .now)
        XCTAssertEqual(emitted.value, [], "record 0 is still being detected")
        sink.submit(Self.record(first.frame), lane: first.lane, order: first.order, capturedAt: .now)
        XCTAssertEqual(emitted.value, ["record 0", "record 1", "down"])
    }

    /// A source removed while two of its frames are in workers: its queued frames go back to the pool at once,
    /// the two in flight are still emitted, and only then does the lane finish as removed.
    func testDiscardWhileFramesAreInWorkers() throws {
        let ring = FrameRing<String>()
        let emitted = Locked<[String]>([])
        let sink = OrderedSink<String>(emit: { record in emitted.mutate { $0.append("record \(record.frame)") } },
                                       laneFinished: { _, ending in emitted.mutate { $0.append(ending) } })
        let lane = ring.addSource(capacity: 8, policy: .lossless)
        let frames = (0..<5).map { frame("a", $0) }
        for frame in frames { ring.push(frame, lane: lane) }
        let inWorkers = try (0..<2).map { _ in try XCTUnwrap(ring.next()?.dispatched) }
        ring.close(lane: lane, ending: "removed", discardingQueued: true)
        let reused = (0..<3).map { _ in pool.take(width: 4, height: 4) }
        let queued = frames[2...].map { ObjectIdentifier($0.pixels) }
        XCTAssertEqual(Set(reused.map { ObjectIdentifier($0) }), Set(queued), "the queued frames went back to the pool")
        XCTAssertFalse(ring.push(frame("a", 5), lane: lane))
        let end = try XCTUnwrap(ring.next()?.laneEnd)
        XCTAssertEqual(end.total, 2, "only the frames handed out count")
        sink.finish(lane: end.lane, total: end.total, ending: end.ending)
        for job in inWorkers.reversed() {
            sink.submit(Self.record(job.frame), lane: job.lane, order: job.order, capturedAt: .now)
        }
        XCTAssertEqual(emitted.value, ["record 0", "record 1", "removed"])
    }

    func testLaneSlotsAreReusedAndLaneNumbersNever() throws {
        let ring = FrameRing<String>()
        let steady = ring.addSource(capacity: 2, policy: .latest)
        var seen: Set<Int> = [steady]
        var previous: Int?
        for cycle in 0..<1000 {
            let lane = ring.addSource(capacity: 2, policy: .lossless)
            XCTAssertTrue(seen.insert(lane).inserted, "lane \(lane) handed out twice")
            if let previous {
                XCTAssertFalse(ring.push(frame("old", cycle), lane: previous), "a frame for an ended lane never reaches its slot's new lane")
                XCTAssertNil(ring.stats(lane: previous))
            }
            ring.push(frame("s\(cycle)", 0), lane: lane)
            ring.close(lane: lane, ending: "e\(cycle)")
            let job = try XCTUnwrap(ring.next()?.dispatched)
            XCTAssertEqual([job.lane, job.order], [lane, 0])
            job.frame.pixels.recycle()
            let end = try XCTUnwrap(ring.next()?.laneEnd)
            XCTAssertEqual(end.lane, lane)
            XCTAssertEqual(end.ending, "e\(cycle)")
            previous = lane
        }
        XCTAssertEqual(ring.slotCount, 2, "a thousand sources one after another use one slot beside the steady one")
        XCTAssertEqual(ring.stats(lane: steady), LaneStats(queued: 0, dropped: 0, dispatched: 0))
    }

    func testStopEndsEverythingWithoutEnds() {
        let ring = FrameRing<String>()
        let open = ring.addSource(capacity: 4, policy: .lossless)
        let closed = ring.addSource(capacity: 4, policy: .lossless)
        ring.push(frame("a", 0), lane: open)
        ring.push(frame("b", 0), lane: closed)
        ring.close(lane: closed, ending: "end of file")
        ring.stop()
        XCTAssertNil(ring.next(), "a stopped ring hands out neither frames nor ends")
        XCTAssertFalse(ring.push(frame("a", 1), lane: open))
        XCTAssertEqual(ring.stats(lane: open)?.queued, 0, "queued frames were recycled")
    }

    /// Three sources through the ring and the sink with 1 and with 4 workers: each lane finishes exactly once,
    /// after all its records, and the records are the same whatever the number of workers.
    func testEndsWithOneAndManyWorkers() {
        let one = run(workers: 1)
        let many = run(workers: 4)
        for result in [one, many] {
            XCTAssertEqual(result.finished.sorted(), ["s0 after 300", "s1 after 300", "s2 after 300"])
        }
        XCTAssertEqual(one.records, many.records)
        XCTAssertEqual(one.records.filter { $0.hasPrefix("s1 ") }, (0..<300).map { "s1 \($0) seq \($0)" })
    }

    private func run(workers: Int) -> (records: [String], finished: [String]) {
        let ring = FrameRing<String>()
        let records = Locked<[String]>([])
        let finished = Locked<[String]>([])
        let sink = OrderedSink<String>(
            emit: { record in records.mutate { $0.append("\(record.source) \(record.frame) seq \(record.seq)") } },
            laneFinished: { _, source in
                let count = records.value.filter { $0.hasPrefix(source + " ") }.count
                finished.mutate { $0.append("\(source) after \(count)") }
            })
        let lanes = (0..<3).map { _ in ring.addSource(capacity: 3, policy: .lossless) }
        ring.seal()
        let group = DispatchGroup()
        for _ in 0..<workers {
            group.enter()
            Thread {
                while let item = ring.next() {
                    switch item {
                    case .frame(let job):
                        let record = Self.record(job.frame)
                        job.frame.pixels.recycle()
                        sink.submit(record, lane: job.lane, order: job.order, capturedAt: .now)
                    case .end(let lane, let total, let ending):
                        sink.finish(lane: lane, total: total, ending: ending)
                    }
                }
                group.leave()
            }.start()
        }
        for (index, lane) in lanes.enumerated() {
            group.enter()
            Thread { [pool] in
                for i in 0..<300 { ring.push(FrameRingTests.frame("s\(index)", i, pool: pool), lane: lane) }
                ring.close(lane: lane, ending: "s\(index)")
                group.leave()
            }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success, "workers must all return once every lane has ended")
        let all = records.value
        return (lanes.indices.flatMap { index in all.filter { $0.hasPrefix("s\(index) ") } }, finished.value)
    }
}

extension FrameRing.Item {
    var dispatched: DispatchedFrame? {
        if case .frame(let job) = self { job } else { nil }
    }

    var laneEnd: (lane: Int, total: Int, ending: Ending)? {
        if case .end(let lane, let total, let ending) = self { (lane, total, ending) } else { nil }
    }
}
