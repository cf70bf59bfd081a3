import Foundation
import Tracking
import Values
import XCTest

/// Synthetic detection sequences with known truth; each test asserts track ids and events exactly.
final class TrackerTests: XCTestCase {
    /// A box of `width` x `height` centred at (x, y).
    static func detection(_ x: Float, _ y: Float, width: Float = 0.1, height: Float = 0.3, score: Float = 0.9,
                          label: String = "person") -> Detection {
        Detection(classID: label == "person" ? 1 : 2, label: label, score: score,
                  xmin: x - width / 2, ymin: y - height / 2, xmax: x + width / 2, ymax: y + height / 2)
    }

    /// Deterministic jitter in [-amplitude, amplitude] (a fixed linear congruential sequence).
    struct Jitter {
        var state: UInt64
        let amplitude: Float
        mutating func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * amplitude
        }
    }

    struct Step {
        var seconds: Double
        var detections: [Detection] = []
        var lowScore: [Detection] = []
    }

    /// Runs `steps` (frame i is steps[i]) and returns each frame's ids and every event, described one per line.
    static func run(_ steps: [Step], tracker: inout Tracker, finishing reason: TrackEndReason? = nil)
        -> (ids: [[Int?]], events: [String]) {
        var ids: [[Int?]] = []
        var events: [String] = []
        for (frame, step) in steps.enumerated() {
            let stamp = Date(timeIntervalSince1970: 1_000_000 + step.seconds)
            let update = tracker.update(seconds: step.seconds, captured: stamp, time: stamp, frame: frame,
                                        detections: step.detections, lowScore: step.lowScore)
            ids.append(update.trackIDs)
            events += update.events.map { "f\(frame) " + describe($0) }
        }
        if let reason {
            events += tracker.finish(reason: reason, time: Date()).map { "finish " + describe($0) }
        }
        return (ids, events)
    }

    static func describe(_ event: TrackEvent) -> String {
        switch event {
        case .start(let s): "start \(s.trackID) \(s.label)"
        case .end(let e): "end \(e.trackID) \(e.label) \(e.reason.rawValue) last f\(e.lastFrame)"
        case .presence(let p): "presence \(p.label) \(p.count)"
        }
    }

    func testTwoPeopleCrossingKeepTheirIDs() {
        // 8 fps; A walks right, B (one frame later, a little lower and larger) walks left; they overlap mid-way.
        var jitter = Jitter(state: 7, amplitude: 0.004)
        var steps: [Step] = []
        for frame in 0..<56 {
            let t = Double(frame) / 8
            var step = Step(seconds: t)
            if frame < 40 {
                let a = Self.detection(0.15 + 0.15 * Float(t) + jitter.next(), 0.5 + jitter.next(), score: 0.9)
                step.detections.append(a)
                if frame >= 1 {
                    let b = Self.detection(0.85 - 0.15 * Float(t) + jitter.next(), 0.55 + jitter.next(), width: 0.12,
                                           height: 0.32, score: 0.8)
                    step.detections.append(b)
                }
            }
            steps.append(step)
        }
        // They overlap a lot on the way, so a tracker that swapped them would have had the chance.
        let crossing = steps[19].detections
        XCTAssertGreaterThan(iou(crossing[0], crossing[1]), 0.5)

        var tracker = Tracker(source: "door")
        let (ids, events) = Self.run(steps, tracker: &tracker)
        XCTAssertEqual(ids[0], [nil])
        XCTAssertEqual(ids[1], [nil, nil])
        XCTAssertEqual(ids[2], [1, nil])
        for frame in 3..<40 { XCTAssertEqual(ids[frame], [1, 2], "frame \(frame)") }
        // Last seen at frame 39 (4.875 s); the first frame more than 2 s later is 56... which is not in the run.
        XCTAssertEqual(events, ["f2 start 1 person", "f2 presence person 1", "f3 start 2 person", "f3 presence person 2"])

        let more = (56..<60).map { Step(seconds: Double($0) / 8) }
        let (_, later) = Self.run(more, tracker: &tracker)
        // 7.0 s is the first time more than max_age (2 s) after 4.875 s; frames of `more` are numbered from 0.
        XCTAssertEqual(later, ["f0 end 1 person max_age last f39", "f0 end 2 person max_age last f39", "f0 presence person 0"])
    }

    func testAMissOfAFewFramesKeepsTheID() {
        // 8 fps, walking 0.1/s with a box 0.08 wide: after the 1 s gap the person has moved more than the box's
        // width, so only the constant-velocity prediction can continue the track.
        var steps: [Step] = []
        for frame in 0..<48 {
            let t = Double(frame) / 8
            let seen = !(20..<28).contains(frame)
            steps.append(Step(seconds: t, detections: seen ? [Self.detection(0.2 + 0.1 * Float(t), 0.5, width: 0.08)] : []))
        }
        var tracker = Tracker(source: "door")
        let (ids, events) = Self.run(steps, tracker: &tracker, finishing: .endOfFile)
        XCTAssertEqual(ids[0], [nil])
        XCTAssertEqual(ids[1], [nil])
        for frame in 2..<20 { XCTAssertEqual(ids[frame], [1], "frame \(frame)") }
        for frame in 20..<28 { XCTAssertEqual(ids[frame], [], "frame \(frame)") }
        for frame in 28..<48 { XCTAssertEqual(ids[frame], [1], "frame \(frame)") }
        XCTAssertEqual(events, ["f2 start 1 person", "f2 presence person 1",
                                "finish end 1 person end_of_file last f47", "finish presence person 0"])
    }

    func testAnOcclusionLongerThanMaxAgeEndsTheTrackAndStartsANewOne() {
        // Seen until 1.875 s, hidden for 3 s, seen again from 5 s; max_age is 2 s.
        var steps: [Step] = []
        for frame in 0..<60 {
            let seen = frame < 16 || frame >= 40
            steps.append(Step(seconds: Double(frame) / 8, detections: seen ? [Self.detection(0.5, 0.5)] : []))
        }
        var tracker = Tracker(source: "door")
        let (ids, events) = Self.run(steps, tracker: &tracker, finishing: .endOfFile)
        for frame in 2..<16 { XCTAssertEqual(ids[frame], [1], "frame \(frame)") }
        XCTAssertEqual(ids[40], [nil])
        XCTAssertEqual(ids[41], [nil])
        for frame in 42..<60 { XCTAssertEqual(ids[frame], [2], "frame \(frame)") }
        // 4.0 s (frame 32) is the first frame more than 2 s after 1.875 s.
        XCTAssertEqual(events, ["f2 start 1 person", "f2 presence person 1",
                                "f32 end 1 person max_age last f15", "f32 presence person 0",
                                "f42 start 2 person", "f42 presence person 1",
                                "finish end 2 person end_of_file last f59", "finish presence person 0"])
    }

    func testAStationaryObjectKeepsOneTrackForTenMinutesWithoutNewEvents() throws {
        // A parked car at 5 fps for 10 minutes, its box and score jittering, missed in one frame of every 50.
        var jitter = Jitter(state: 42, amplitude: 0.003)
        var steps: [Step] = []
        for frame in 0..<3000 {
            let car = Self.detection(0.3 + jitter.next(), 0.6 + jitter.next(), width: 0.2 + jitter.next(), height: 0.15,
                                     score: 0.75 + jitter.next() * 10, label: "car")
            steps.append(Step(seconds: Double(frame) / 5, detections: frame % 50 == 49 ? [] : [car]))
        }
        var tracker = Tracker(source: "drive")
        let (ids, events) = Self.run(steps, tracker: &tracker)
        for frame in 2..<3000 { XCTAssertEqual(ids[frame], frame % 50 == 49 ? [] : [1], "frame \(frame)") }
        XCTAssertEqual(events, ["f2 start 1 car", "f2 presence car 1"])
        let end = tracker.finish(reason: .shutdown, time: Date())
        guard case .end(let ended) = try XCTUnwrap(end.first) else { return XCTFail("\(end)") }
        XCTAssertEqual(ended.durationSeconds, 599.6, accuracy: 1e-6, "first seen at 0 s, last at frame 2998")
        XCTAssertEqual(ended.reason, .shutdown)
        XCTAssertEqual(end.count, 2, "the end and presence 0")
    }

    func testLowScoreDetectionsContinueATrackButNeverStartOne() {
        // A person whose score drops below the report threshold for 4 s (longer than max_age), then recovers;
        // a second thing is only ever seen at low score.
        func steps(lowScoreKept: Bool) -> [Step] {
            (0..<64).map { frame in
                let t = Double(frame) / 8
                let person = Self.detection(0.2 + 0.05 * Float(t), 0.5, score: (16..<48).contains(frame) ? 0.3 : 0.9)
                var step = Step(seconds: t)
                if person.score >= 0.5 { step.detections.append(person) } else if lowScoreKept { step.lowScore.append(person) }
                if lowScoreKept { step.lowScore.append(Self.detection(0.8, 0.3, score: 0.2)) }
                return step
            }
        }
        var tracker = Tracker(source: "door")
        let (ids, events) = Self.run(steps(lowScoreKept: true), tracker: &tracker, finishing: .endOfFile)
        for frame in 2..<16 { XCTAssertEqual(ids[frame], [1], "frame \(frame)") }
        for frame in 16..<48 { XCTAssertEqual(ids[frame], [], "low-score detections are never reported, frame \(frame)") }
        for frame in 48..<64 { XCTAssertEqual(ids[frame], [1], "the same track, frame \(frame)") }
        XCTAssertEqual(events, ["f2 start 1 person", "f2 presence person 1",
                                "finish end 1 person end_of_file last f63", "finish presence person 0"])

        // Without the low-score stage the same person is lost after max_age and comes back as a new track.
        var plain = Tracker(source: "door")
        let (plainIDs, plainEvents) = Self.run(steps(lowScoreKept: false), tracker: &plain, finishing: .endOfFile)
        XCTAssertEqual(plainIDs[50], [2])
        XCTAssertEqual(plainEvents, ["f2 start 1 person", "f2 presence person 1",
                                     "f32 end 1 person max_age last f15", "f32 presence person 0",
                                     "f50 start 2 person", "f50 presence person 1",
                                     "finish end 2 person end_of_file last f63", "finish presence person 0"])
    }

    func testFrameDropsUnderLatestChangeNothingButTheFramesSeen() {
        // One walk (0.08/s for 6 s, then gone), sampled at 30 fps, at 5 fps, and at 30 fps with `latest` dropping
        // runs of 1 to 11 frames (gaps up to 0.4 s). Every run: one track, id 1, ended at the first frame more
        // than max_age after the last one it was seen in.
        func walk(frames: [Int], fps: Double) -> [Step] {
            frames.map { frame in
                let t = Double(frame) / fps
                return Step(seconds: t, detections: t < 6 ? [Self.detection(0.2 + 0.08 * Float(t), 0.5)] : [])
            }
        }
        var kept: [Int] = []
        var jitter = Jitter(state: 3, amplitude: 1)
        var frame = 0
        while frame < 300 {
            kept.append(frame)
            frame += 1 + Int((jitter.next() + 1) * 5.5)
        }
        XCTAssertGreaterThan(zip(kept, kept.dropFirst()).map { $1 - $0 }.max() ?? 0, 7, "some gaps are long")
        for (name, frames, fps) in [("30 fps", Array(0..<300), 30.0), ("5 fps", Array(0..<50), 5.0), ("30 fps with drops", kept, 30.0)] {
            let steps = walk(frames: frames, fps: fps)
            var tracker = Tracker(source: "door")
            let (ids, events) = Self.run(steps, tracker: &tracker)
            let lastSeen = steps.lastIndex { !$0.detections.isEmpty } ?? 0
            let endFrame = steps.firstIndex { $0.seconds - steps[lastSeen].seconds > 2 } ?? -1
            XCTAssertEqual(Set(ids.dropFirst(2).flatMap { $0 }), [1], name)
            XCTAssertEqual(events, ["f2 start 1 person", "f2 presence person 1",
                                    "f\(endFrame) end 1 person max_age last f\(lastSeen)", "f\(endFrame) presence person 0"], name)
        }
    }

    func testIDsAreNeverReusedByTheTrackerThatReplacesAnother() {
        var first = Tracker(source: "door")
        let steps = (0..<3).map { Step(seconds: Double($0) / 8, detections: [Self.detection(0.5, 0.5)]) }
        XCTAssertEqual(Self.run(steps, tracker: &first, finishing: .sourceDown).events,
                       ["f2 start 1 person", "f2 presence person 1", "finish end 1 person source_down last f2", "finish presence person 0"])
        var second = Tracker(source: "door", firstID: first.nextID)
        XCTAssertEqual(Self.run(steps, tracker: &second).ids[2], [2])
    }

    func testTheSourceClockFollowsTimestampsAndBridgesTheirGaps() {
        var clock = SourceClock()
        let start = Date(timeIntervalSince1970: 1_000_000)
        XCTAssertEqual(clock.seconds(pts: 10, captured: start), 0)
        // A file read faster than real time: its timestamps count, not the capture times.
        XCTAssertEqual(clock.seconds(pts: 10.5, captured: start + 0.01), 0.5)
        // A timestamp going back or missing: the capture time elapsed.
        XCTAssertEqual(clock.seconds(pts: 2, captured: start + 0.21), 0.7, accuracy: 1e-6)
        XCTAssertEqual(clock.seconds(pts: nil, captured: start + 0.31), 0.8, accuracy: 1e-6)
        XCTAssertEqual(clock.seconds(pts: 3, captured: start + 0.41), 0.9, accuracy: 1e-6)
        XCTAssertEqual(clock.seconds(pts: 3.25, captured: start + 0.42), 1.15, accuracy: 1e-6)
    }

    private func iou(_ a: Detection, _ b: Detection) -> Float {
        let w = min(a.xmax, b.xmax) - max(a.xmin, b.xmin), h = min(a.ymax, b.ymax) - max(a.ymin, b.ymin)
        guard w > 0, h > 0 else { return 0 }
        let union = (a.xmax - a.xmin) * (a.ymax - a.ymin) + (b.xmax - b.xmin) * (b.ymax - b.ymin) - w * h
        return w * h / union
    }
}
