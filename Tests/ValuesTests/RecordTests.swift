import Foundation
import XCTest
import TestSupport
@testable import Values

final class RecordTests: XCTestCase {
    /// 2026-11-22T22:15:48.912Z: times are written to the millisecond, so a test time must be one.
    static let time = Date(timeIntervalSince1970: 1_795_385_748.912)
    static let captureTime = Date(timeIntervalSince1970: 1_795_385_748.881)

    static let person = Detection(classID: 1, label: "person", score: 0.9882086,
                                  xmin: 0.6510308, ymin: 0.27968413, xmax: 0.6884589, ymax: 0.4073289)

    static let tracked = Detection(classID: 1, label: "person", score: 0.9882086,
                                   xmin: 0.6510308, ymin: 0.27968413, xmax: 0.6884589, ymax: 0.4073289, trackID: 3)
    static let box = Box(xmin: 0.1, ymin: 0.2, xmax: 0.3, ymax: 0.4)

    /// One record of every kind, each with the exact line today's daemon writes for it.
    static let samples: [(record: Record, line: String)] = {
        var changes = ReloadChanges()
        changes.changed = ["threshold", "sources.door.input"]
        changes.added = ["yard"]
        changes.restarted = [.init(source: "door", reason: "input changed")]
        changes.needsRestart = ["workers"]
        return [
            (.hello(.init(version: "0.9.0", model: "/var/lib/sightline/model", precision: "int8", labels: ["person", "car"],
                          sources: ["door", "yard"], up: ["door"], time: time)),
             #"{"type":"hello","schema":1,"version":"0.9.0","time":"2026-11-22T22:15:48.912Z","model":"/var/lib/sightline/model","#
                + #""precision":"int8","labels":["person","car"],"sources":["door","yard"],"source_states":{"door":"up","yard":"down"}}"#),
            (.detections(.init(source: "/srv/cams/door.mp4", frame: 41, seq: 40, pts: 4.1, time: time, captureTime: captureTime,
                               width: 768, height: 576, latencyMs: 30.593, inferMs: 11.556, dropped: 1, detections: [person])),
             #"{"type":"detections","source":"/srv/cams/door.mp4","frame":41,"seq":40,"pts":4.1,"time":"2026-11-22T22:15:48.912Z","#
                + #""capture_time":"2026-11-22T22:15:48.881Z","width":768,"height":576,"latency_ms":30.593,"infer_ms":11.556,"dropped":1,"#
                + #""detections":[{"label":"person","class_id":1,"score":0.9882086,"#
                + #""box":{"xmin":0.6510308,"ymin":0.27968413,"xmax":0.6884589,"ymax":0.4073289}}]}"#),
            (.detections(.init(source: "shots", frame: 0, seq: 0, pts: nil, time: time, captureTime: captureTime, width: 2, height: 1,
                               latencyMs: 0, inferMs: 0.5, dropped: 0, detections: [], file: "shots/a \"b\".png")),
             #"{"type":"detections","source":"shots","file":"shots/a \"b\".png","frame":0,"seq":0,"pts":null,"#
                + #""time":"2026-11-22T22:15:48.912Z","capture_time":"2026-11-22T22:15:48.881Z","width":2,"height":1,"#
                + #""latency_ms":0.0,"infer_ms":0.5,"dropped":0,"detections":[]}"#),
            (.heartbeat(.init(source: "door", up: false, fps: 12.5, droppedTotal: 3, time: time)),
             #"{"type":"heartbeat","source":"door","time":"2026-11-22T22:15:48.912Z","state":"down","fps":12.5,"dropped_total":3}"#),
            (.sourceUp(.init(source: "door", input: "rtsp://viewer:***@cam/stream", time: time)),
             #"{"type":"source_up","source":"door","time":"2026-11-22T22:15:48.912Z","input":"rtsp://viewer:***@cam/stream"}"#),
            (.sourceDown(.init(source: "door", reason: "opening failed: Connection refused", retryInSeconds: 1.6, time: time)),
             #"{"type":"source_down","source":"door","time":"2026-11-22T22:15:48.912Z","reason":"opening failed: Connection refused","retry_in_s":1.6}"#),
            (.sourceDown(.init(source: "walk", reason: "end of file", retryInSeconds: nil, time: time)),
             #"{"type":"source_down","source":"walk","time":"2026-11-22T22:15:48.912Z","reason":"end of file","retry_in_s":null}"#),
            (.lag(.init(dropped: 17, time: time)),
             #"{"type":"lag","dropped":17,"time":"2026-11-22T22:15:48.912Z"}"#),
            (.reload(.init(.applied(changes), time: time)),
             #"{"type":"reload","time":"2026-11-22T22:15:48.912Z","status":"applied","changed":["threshold","sources.door.input"],"#
                + #""added":["yard"],"removed":[],"restarted":[{"source":"door","reason":"input changed"}],"needs_restart":["workers"]}"#),
            (.reload(.init(.refused(errors: ["/etc/sightline/sightline.yaml:3: threshold: must be between 0 and 1, got 1.5"]), time: time)),
             #"{"type":"reload","time":"2026-11-22T22:15:48.912Z","status":"refused","#
                + #""errors":["/etc/sightline/sightline.yaml:3: threshold: must be between 0 and 1, got 1.5"]}"#),
            (.error(.init(reason: "too slow", dropped: 250, detail: "read nothing for 30 s while records waited; disconnected", time: time)),
             #"{"type":"error","reason":"too slow","dropped":250,"detail":"read nothing for 30 s while records waited; disconnected","#
                + #""time":"2026-11-22T22:15:48.912Z"}"#),
            (.error(.init(reason: "too many subscribers", limit: 64, time: time)),
             #"{"type":"error","reason":"too many subscribers","limit":64,"time":"2026-11-22T22:15:48.912Z"}"#),
            (.detections(.init(source: "door", frame: 7, seq: 7, pts: 0.28, time: time, captureTime: captureTime, width: 768,
                               height: 576, latencyMs: 12.25, inferMs: 9.5, dropped: 0, detections: [tracked])),
             #"{"type":"detections","source":"door","frame":7,"seq":7,"pts":0.28,"time":"2026-11-22T22:15:48.912Z","#
                + #""capture_time":"2026-11-22T22:15:48.881Z","width":768,"height":576,"latency_ms":12.25,"infer_ms":9.5,"dropped":0,"#
                + #""detections":[{"label":"person","class_id":1,"score":0.9882086,"#
                + #""box":{"xmin":0.6510308,"ymin":0.27968413,"xmax":0.6884589,"ymax":0.4073289},"track_id":3}]}"#),
            (.objectStart(.init(source: "door", trackID: 3, label: "person", time: time, firstSeen: captureTime, frame: 7,
                                box: box, score: 0.75)),
             #"{"type":"object_start","source":"door","track_id":3,"label":"person","time":"2026-11-22T22:15:48.912Z","#
                + #""first_seen":"2026-11-22T22:15:48.881Z","frame":7,"score":0.75,"box":{"xmin":0.1,"ymin":0.2,"xmax":0.3,"ymax":0.4}}"#),
            (.objectEnd(.init(source: "door", trackID: 3, label: "person", time: time, firstSeen: captureTime, lastSeen: time,
                              lastFrame: 70, durationSeconds: 2.52, bestScore: 0.9, bestBox: box, reason: .maxAge)),
             #"{"type":"object_end","source":"door","track_id":3,"label":"person","time":"2026-11-22T22:15:48.912Z","#
                + #""first_seen":"2026-11-22T22:15:48.881Z","last_seen":"2026-11-22T22:15:48.912Z","last_frame":70,"duration_s":2.52,"#
                + #""best_score":0.9,"best_box":{"xmin":0.1,"ymin":0.2,"xmax":0.3,"ymax":0.4},"reason":"max_age"}"#),
            (.presence(.init(source: "door", label: "person", count: 2, time: time)),
             #"{"type":"presence","source":"door","label":"person","count":2,"time":"2026-11-22T22:15:48.912Z"}"#),
            (.subscribed(.init(types: ["object_start", "object_end"], sources: nil, time: time)),
             #"{"type":"subscribed","types":["object_start","object_end"],"sources":null,"time":"2026-11-22T22:15:48.912Z"}"#),
            (.error(.init(reason: "invalid request", detail: #"unknown key "type" in "subscribe"; known keys: types, sources"#, time: time)),
             #"{"type":"error","reason":"invalid request","detail":"unknown key \"type\" in \"subscribe\"; known keys: types, sources","#
                + #""time":"2026-11-22T22:15:48.912Z"}"#),
        ]
    }()

    func testEveryKindIsWrittenAsDocumented() {
        for (record, line) in Self.samples {
            XCTAssertEqual(record.jsonLine(), line + "\n")
        }
    }

    func testEveryKindRoundTrips() throws {
        for (record, line) in Self.samples {
            XCTAssertEqual(try Record(jsonLine: record.jsonLine()), record, line)
            XCTAssertEqual(try Record(jsonLine: line), record, "without the newline too")
        }
    }

    /// A kind added to `Record` without a sample above fails here, so each has its round trip.
    func testSamplesCoverEveryKind() throws {
        var covered = Set<String>()
        for (_, line) in Self.samples {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            covered.insert(try XCTUnwrap(object["type"] as? String))
        }
        XCTAssertEqual(covered, Set(Record.kinds.keys))
    }

    /// Scores and boxes are `Float`s: decoding gives back the very value written, not a neighbour.
    func testFloatsRoundTripExactly() throws {
        var generator = SplitMix64(seed: 10)
        let detections = (0..<2000).map { i in
            Detection(classID: i % 90 + 1, label: "class_\(i)", score: Float.random(in: 0...1, using: &generator),
                      xmin: Float.random(in: 0...1, using: &generator), ymin: Float.random(in: 0...1, using: &generator),
                      xmax: Float.random(in: 0...1, using: &generator), ymax: .random(in: 0...1, using: &generator))
        }
        let record = Record.detections(.init(source: "s", frame: 0, seq: 0, pts: 1e-6, time: Self.time, captureTime: Self.time,
                                             width: 1, height: 1, latencyMs: 1, inferMs: 1, dropped: 0, detections: detections))
        XCTAssertEqual(try Record(jsonLine: record.jsonLine()), record)
    }

    func testTimesKeepTheMillisecond() throws {
        for millis in [0, 1, 499, 500, 999] {
            let date = Date(timeIntervalSince1970: Double(1_795_385_748_000 + millis) / 1000)
            let text = RFC3339.format(date)
            XCTAssertEqual(text, "2026-11-22T22:15:48.\(String(format: "%03d", millis))Z")
            XCTAssertEqual(RFC3339.parse(text), date)
        }
        XCTAssertEqual(RFC3339.parse("1970-01-01T00:00:00Z"), Date(timeIntervalSince1970: 0))
        XCTAssertEqual(RFC3339.parse("1970-01-01T00:00:01.5Z"), Date(timeIntervalSince1970: 1.5))
        for bad in ["", "2026-11-22", "2026-11-22T22:15:48.912", "2026-11-22T22:15:48.912+01:00", "2026-13-22T22:15:48.912Z",
                    "2026-11-22T22:15:48.Z", "2026-11-22 22:15:48.912Z", "2026-11-22T22:15:48.912Zx"] {
            XCTAssertNil(RFC3339.parse(bad), bad)
        }
    }

    /// The schema's promise to readers: fields added later and keys in another order change nothing.
    func testUnknownFieldsAreIgnored() throws {
        let line = #"{"time":"2026-11-22T22:15:48.912Z","dropped":17,"type":"lag","reason":"a later field","extra":{"a":[1,2]}}"#
        XCTAssertEqual(try Record(jsonLine: line), .lag(.init(dropped: 17, time: Self.time)))
    }

    /// A newer daemon's record type is kept whole, to be passed on, not refused.
    func testUnknownTypeIsKept() throws {
        let line = #"{"type":"zone_enter","source":"door","zone":"porch"}"#
        let record = try Record(jsonLine: line + "\n")
        XCTAssertEqual(record, .unknown(type: "zone_enter", line: line))
        XCTAssertEqual(record.jsonLine(), line + "\n")
    }

    func testMalformedLinesSayWhatIsWrong() {
        let cases: [(line: String, reason: String)] = [
            ("", "not JSON"),
            ("{\"type\":\"lag\"", "not JSON"),
            ("hello", "not JSON"),
            ("[1,2]", "not a JSON object"),
            ("\"lag\"", "not a JSON object"),
            (#"{"dropped":1}"#, #"no "type""#),
            (#"{"type":7}"#, #""type" is not a string"#),
            (#"{"type":"lag","time":"2026-11-22T22:15:48.912Z"}"#, #""lag" record: no "dropped""#),
            (#"{"type":"lag","dropped":"many","time":"2026-11-22T22:15:48.912Z"}"#, #""lag" record: "dropped": expected an integer"#),
            (#"{"type":"lag","dropped":1.5,"time":"2026-11-22T22:15:48.912Z"}"#, #""lag" record: a number does not fit its field"#),
            (#"{"type":"detections","source":"s","frame":0,"seq":0,"pts":null,"time":"2026-11-22T22:15:48.912Z","#
                + #""capture_time":"2026-11-22T22:15:48.912Z","width":1,"height":1,"latency_ms":1,"infer_ms":1,"dropped":0,"#
                + #""detections":[{"label":"person","class_id":1,"score":1e40,"box":{"xmin":0,"ymin":0,"xmax":1,"ymax":1}}]}"#,
             #""detections" record: a number does not fit its field"#),
            (#"{"type":"lag","dropped":null,"time":"2026-11-22T22:15:48.912Z"}"#, #""lag" record: "dropped""#),
            (#"{"type":"lag","dropped":1,"time":"yesterday"}"#, #""lag" record: "time": not an RFC 3339 UTC time"#),
            (#"{"type":"heartbeat","source":"d","time":"2026-11-22T22:15:48.912Z","state":"asleep","fps":1,"dropped_total":0}"#,
             #""heartbeat" record: "state": neither up nor down: asleep"#),
            (#"{"type":"reload","time":"2026-11-22T22:15:48.912Z","status":"maybe"}"#, #""reload" record: "status": neither applied nor refused"#),
            (#"{"type":"detections","source":"s","frame":0,"seq":0,"pts":null,"time":"2026-11-22T22:15:48.912Z","#
                + #""capture_time":"2026-11-22T22:15:48.912Z","width":1,"height":1,"latency_ms":1,"infer_ms":1,"dropped":0,"#
                + #""detections":[{"label":"person","class_id":1,"score":0.5}]}"#,
             #""detections" record: no "box" in "detections".[0]"#),
            (#"{"type":"detections","source":"s"}"#, #""detections" record: no "frame""#),
            (#"{"type":"presence","source":"s","label":"person","count":-1.5,"time":"2026-11-22T22:15:48.912Z"}"#,
             #""presence" record: a number does not fit its field"#),
            (#"{"type":"object_start","source":"s","track_id":1,"label":"p","time":"2026-11-22T22:15:48.912Z","#
                + #""first_seen":"2026-11-22T22:15:48.912Z","frame":0,"score":0.5,"box":[0.1,0.2,0.3,0.4]}"#,
             #""object_start" record: "box": expected an object"#),
        ]
        for (line, reason) in cases {
            do {
                let record = try Record(jsonLine: line)
                XCTFail("\(line) decoded as \(record)")
            } catch {
                XCTAssertTrue(error.reason.hasPrefix(reason), "\(line): \(error.reason)")
                XCTAssertTrue(error.description.contains(error.reason), error.description)
            }
        }
    }
}
