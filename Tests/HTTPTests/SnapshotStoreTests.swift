import Foundation
import HTTP
import Tracking
import Values
import XCTest

/// Event snapshots without a server or a pipeline: which frame an event's snapshot shows, that frames go back to their
/// pool, and which events are kept.
final class SnapshotStoreTests: XCTestCase {
    let pool = PixelBufferPool(keep: 64)
    /// Every frame's pixels that went through the store.
    var used: [PixelBuffer] = []

    /// A grey frame from `pool`.
    func frame(_ sequence: Int, source: String = "cam") -> Frame {
        let pixels = pool.take(width: 64, height: 48)
        pixels.bytes.initializeMemory(as: UInt8.self, repeating: 90, count: pixels.rowBytes * 48)
        return Frame(sourceID: source, sequence: sequence, pts: nil, captureTime: Date(), captureInstant: .now, pixels: pixels)
    }

    func person(_ score: Float, track: Int?) -> Detection {
        Detection(classID: 1, label: "person", score: score, xmin: 0.25, ymin: 0.25, xmax: 0.75, ymax: 0.75, trackID: track)
    }

    func record(_ frame: Int, _ detections: [Detection], source: String = "cam") -> Record.Detections {
        Record.Detections(source: source, frame: frame, seq: frame, pts: nil, time: Date(), captureTime: Date(), width: 64, height: 48,
                          latencyMs: 1, inferMs: 1, dropped: 0, detections: detections)
    }

    func start(_ track: Int, frame: Int, source: String = "cam") -> TrackEvent {
        .start(Record.ObjectStart(source: source, trackID: track, label: "person", time: Date(), firstSeen: Date(), frame: frame,
                                  box: Box(xmin: 0.25, ymin: 0.25, xmax: 0.75, ymax: 0.75), score: 0.5))
    }

    func end(_ track: Int, source: String = "cam") -> TrackEvent {
        .end(Record.ObjectEnd(source: source, trackID: track, label: "person", time: Date(), firstSeen: Date(), lastSeen: Date(), lastFrame: 0,
                              durationSeconds: 1, bestScore: 0.9, bestBox: Box(xmin: 0.25, ymin: 0.25, xmax: 0.75, ymax: 0.75), reason: .maxAge))
    }

    /// One frame through the tap and out of the sink, as the daemon does it.
    func pass(_ store: SnapshotStore, _ sequence: Int, _ detections: [Detection], events: [TrackEvent] = []) {
        let frame = frame(sequence)
        used.append(frame.pixels)
        if !store.hold(frame, detections: detections) { frame.pixels.recycle() }
        store.record(record(sequence, detections), events: events)
    }

    /// Polls (bounded) until the event's snapshot is encoded and satisfies `done`.
    func snapshot(_ store: SnapshotStore, _ id: String, until done: (SnapshotStore.Snapshot) -> Bool = { _ in true }) -> SnapshotStore.Snapshot? {
        guard let event = SnapshotStore.EventKey(id: id) else { return nil }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if case .picture(let snapshot) = store.lookup(event), done(snapshot) { return snapshot }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return nil
    }

    func testTheSnapshotIsTheEventsBestFrameAndFinalAtItsEnd() throws {
        let store = SnapshotStore(capacity: 10)
        defer { store.stop() }
        pass(store, 0, [person(0.8, track: nil)])  // tentative: no track id yet, no event
        pass(store, 1, [person(0.6, track: 3)], events: [start(3, frame: 1)])
        let first = try XCTUnwrap(snapshot(store, "cam-3"), "available once the event started")
        XCTAssertEqual(first.frame, 1)
        XCTAssertFalse(first.final)
        pass(store, 2, [person(0.9, track: 3)])
        pass(store, 3, [person(0.7, track: 3)])  // lower: not the snapshot
        pass(store, 4, [person(0.95, track: nil), person(0.85, track: 3)])  // another object's higher score does not count
        pass(store, 5, [], events: [end(3)])
        let final = try XCTUnwrap(snapshot(store, "cam-3") { $0.final })
        XCTAssertEqual(final.frame, 2)
        XCTAssertEqual(final.score, 0.9)
        XCTAssertEqual(Array(final.jpeg.prefix(2)), [0xFF, 0xD8], "a JPEG")
        // A buffer its pool holds already is refused: each one is back.
        XCTAssertTrue(used.allSatisfy { !$0.recycle() }, "every frame went back to its pool")
    }

    func testOnlyTheLastEventsAreKeptAndIdsAreChecked() throws {
        let store = SnapshotStore(capacity: 2)
        defer { store.stop() }
        for track in 1...3 {
            pass(store, track, [person(0.7, track: track)], events: [start(track, frame: track)])
            pass(store, 10 + track, [], events: [end(track)])
        }
        XCTAssertNotNil(snapshot(store, "cam-3") { $0.final })
        XCTAssertNotNil(snapshot(store, "cam-2") { $0.final })
        guard case .unknown = store.lookup(try XCTUnwrap(SnapshotStore.EventKey(id: "cam-1"))) else {
            return XCTFail("the oldest of three events is no longer kept with capacity 2")
        }
        XCTAssertTrue(store.keeps(SnapshotStore.EventKey(source: "cam", trackID: 2)))
        XCTAssertFalse(store.keeps(SnapshotStore.EventKey(source: "door", trackID: 2)), "track ids are per source")

        XCTAssertEqual(SnapshotStore.EventKey(id: "front-door-12"), SnapshotStore.EventKey(source: "front-door", trackID: 12))
        XCTAssertEqual(SnapshotStore.EventKey(id: "door%2Fcam-4"), SnapshotStore.EventKey(source: "door/cam", trackID: 4))
        XCTAssertEqual(SnapshotStore.EventKey(source: "door/cam", trackID: 4).path, "/events/door%2Fcam-4/snapshot.jpg")
        for bad in ["cam", "cam-", "-4", "cam-0", "cam-1x", "cam-+1", "cam-99999999999999999999", "%ZZ-1"] {
            XCTAssertNil(SnapshotStore.EventKey(id: bad), bad)
        }
    }

    /// The best view is the source's frame itself, kept rather than copied each time it improves: an event costs one
    /// copy and one encode, when it ends, whatever the number of its better views; their frames all go back.
    func testAnEventIsEncodedOnceHoweverOftenItsViewImproves() throws {
        let store = SnapshotStore(capacity: 10)
        defer { store.stop() }
        pass(store, 0, [person(0.3, track: 4)], events: [start(4, frame: 0)])
        for sequence in 1...20 { pass(store, sequence, [person(0.3 + Float(sequence) / 40, track: 4)]) }
        pass(store, 21, [person(0.6, track: 4)])
        pass(store, 22, [], events: [end(4)])
        let final = try XCTUnwrap(snapshot(store, "cam-4") { $0.final })
        XCTAssertEqual(final.frame, 20)
        XCTAssertEqual(final.score, 0.8, accuracy: 1e-6)
        XCTAssertEqual(store.snapshotsEncoded, 1, "21 better views, one encode")
        XCTAssertTrue(used.allSatisfy { !$0.recycle() }, "every frame went back to its pool")
    }

    /// At most `viewLimit` (16) frames are kept as views. An event whose view would be the 17th frame is passed over,
    /// and the oldest open event's view is encoded at once to make room (open events must not keep every later one from
    /// getting a view for as long as they last); the passed-over event's next better detection becomes its view.
    func testViewsAreBoundedAndTheOldestIsEncodedToMakeRoom() throws {
        let store = SnapshotStore(capacity: 50)
        defer { store.stop() }
        for track in 1...17 { pass(store, track, [person(0.9, track: track)], events: [start(track, frame: track)]) }
        let deadline = Date().addingTimeInterval(20)
        while store.snapshotsEncoded < 1, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertEqual(store.snapshotsEncoded, 1, "the oldest view encoded to make room, nobody having asked")
        let oldest = try XCTUnwrap(snapshot(store, "cam-1"), "its picture, while the event is open")
        XCTAssertEqual(oldest.frame, 1)
        XCTAssertFalse(oldest.final)
        let waiting = try XCTUnwrap(SnapshotStore.EventKey(id: "cam-17"))
        guard case .pending(nil) = store.lookup(waiting) else { return XCTFail("the 17th frame was not kept: \(store.lookup(waiting))") }

        pass(store, 18, [person(0.5, track: 17)])
        let late = try XCTUnwrap(snapshot(store, "cam-17"), "a view once room was made")
        XCTAssertEqual(late.frame, 18)

        pass(store, 19, [], events: (1...17).map { end($0) })
        for track in 1...17 { XCTAssertNotNil(snapshot(store, "cam-\(track)") { $0.final }, "event \(track)") }
        XCTAssertEqual(try XCTUnwrap(snapshot(store, "cam-1")).frame, 1, "the early picture is its final one")
        XCTAssertTrue(used.allSatisfy { !$0.recycle() }, "every frame went back to its pool")
    }

    /// An event none of whose frames reached the store (here: its frames were never held) ends without a picture,
    /// and says so rather than "not yet".
    func testAnEventThatEndsWithoutAPictureSaysItWillHaveNone() throws {
        let store = SnapshotStore(capacity: 10)
        defer { store.stop() }
        store.record(record(0, [person(0.9, track: 5)]), events: [start(5, frame: 0)])
        let event = try XCTUnwrap(SnapshotStore.EventKey(id: "cam-5"))
        guard case .pending(nil) = store.lookup(event) else { return XCTFail("open, no picture yet") }
        store.record(record(1, []), events: [end(5)])
        let deadline = Date().addingTimeInterval(20)
        while case .pending = store.lookup(event), Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        guard case .noPicture = store.lookup(event) else { return XCTFail("ended without a picture: \(store.lookup(event))") }
    }

    func testSnapshotsOffHoldNothing() {
        let store = SnapshotStore(capacity: 0)
        defer { store.stop() }
        let held = frame(0)
        XCTAssertFalse(store.hold(held, detections: [person(0.9, track: nil)]))
        held.pixels.recycle()
        store.record(record(0, [person(0.9, track: 1)]), events: [start(1, frame: 0)])
        XCTAssertFalse(store.keeps(SnapshotStore.EventKey(source: "cam", trackID: 1)))
    }
}
