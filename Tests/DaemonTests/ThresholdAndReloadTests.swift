@testable import Daemon
import Detector
import TestSupport
import Values
import XCTest

final class ThresholdAndReloadTests: XCTestCase {
    func testPerSourceThresholdsParseAndWinOverTheTopLevel() throws {
        let config = try DaemonConfig.parse("""
            threshold: 0.5
            thresholds: { person: 0.6, car: 0.4 }
            sources:
              - { name: plain, input: /dev/video0 }
              - { name: far, input: /dev/video1, threshold: 0.3 }
              - { name: picky, input: /dev/video2, thresholds: { car: 0.9 } }
            """, origin: "t.yaml")
        let global = config.thresholds
        let own = config.sources.map(\.thresholds)
        XCTAssertEqual(own, [SourceThresholds(), SourceThresholds(defaultScore: 0.3), SourceThresholds(perLabel: ["car": 0.9])])
        guard own.count == 3 else { return }
        // A source's own threshold replaces the top level's, per-label ones included.
        XCTAssertEqual(global.overridden(by: own[1]), Thresholds(defaultScore: 0.3))
        // A source's per-label scores are layered over the top-level ones.
        XCTAssertEqual(global.overridden(by: own[2]),
                       Thresholds(defaultScore: 0.5, perLabel: ["person": 0.6, "car": 0.9]))
        XCTAssertEqual(global.overridden(by: SourceThresholds()), global)
    }

    /// A reload that lands while a source is still opening (opening can take seconds): the source is filtered with
    /// the reloaded thresholds, not with those of the configuration it was opened from.
    func testThresholdsReloadedWhileASourceOpensAreTheOnesItRunsWith() throws {
        let opened = SourceThresholds(defaultScore: 0.9), reloaded = SourceThresholds(defaultScore: 0.2)
        let pipeline = try Pipeline(model: try Model(path: TestPaths.model), threads: 1, thresholds: Thresholds(defaultScore: 0.5),
                                    sourceThresholds: ["door": opened], emit: { _ in })
        defer { pipeline.stop() }
        XCTAssertEqual(pipeline.thresholds(for: "door"), Thresholds(defaultScore: 0.9))
        var options = SourceOptions(name: "door", input: TestPaths.media("messi5.jpg"))
        options.thresholds = opened
        let lane = try pipeline.add(options, opener: { options in
            pipeline.setThresholds(Thresholds(defaultScore: 0.5), sources: ["door": reloaded])
            return try Pipeline.openDefault(options)
        })
        XCTAssertNotNil(lane)
        XCTAssertEqual(pipeline.thresholds(for: "door"), Thresholds(defaultScore: 0.2))
    }

    func testThresholdChangesDoNotRestartASource() {
        let before = SourceOptions(name: "a", input: "/dev/video0")
        var after = before
        after.thresholds = SourceThresholds(defaultScore: 0.2)
        XCTAssertFalse(before.needsRestart(toBecome: after))
        XCTAssertEqual(before.changedKeys(comparedTo: after), ["threshold"])
        after.fpsLimit = 2
        XCTAssertTrue(before.needsRestart(toBecome: after))
        XCTAssertEqual(before.changedKeys(comparedTo: after), ["fps_limit", "threshold"])
    }

    func testReloadChangesSayWhatChangedAndWhatWaitsForARestart() throws {
        let old = try DaemonConfig.parse("""
            threshold: 0.5
            workers: 2
            sources:
              - { name: door, input: "rtsp://cam/a", fps_limit: 5 }
              - { name: yard, input: /dev/video0 }
              - { name: gone, input: /dev/video1 }
            """, origin: "o.yaml")
        let new = try DaemonConfig.parse("""
            threshold: 0.4
            workers: 4
            heartbeat_seconds: 5
            socket: { group: video }
            sources:
              - { name: door, input: "rtsp://cam/b", fps_limit: 5 }
              - { name: yard, input: /dev/video0, threshold: 0.7 }
              - { name: new, input: /dev/video2 }
            """, origin: "n.yaml")
        let changes = old.changes(to: new)
        XCTAssertEqual(changes.changed, ["threshold", "heartbeat_seconds", "sources.door.input", "sources.yard.threshold"])
        XCTAssertEqual(changes.added, ["new"])
        XCTAssertEqual(changes.removed, ["gone"])
        XCTAssertEqual(changes.restarted, [ReloadChanges.Restart(source: "door", reason: "input changed")])
        XCTAssertEqual(changes.needsRestart, ["workers", "socket.group"])
        XCTAssertEqual(old.changes(to: old), ReloadChanges(), "nothing changed")
    }

    func testReloadRecords() throws {
        var changes = ReloadChanges()
        changes.changed = ["threshold"]
        changes.restarted = [.init(source: "door", reason: "input changed")]
        changes.needsRestart = ["workers"]
        let appliedLine = Record.reload(.init(.applied(changes))).jsonLine()
        let applied = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(appliedLine.utf8)) as? [String: Any])
        XCTAssertEqual(applied["type"] as? String, "reload")
        XCTAssertEqual(applied["status"] as? String, "applied")
        XCTAssertEqual(applied["changed"] as? [String], ["threshold"])
        XCTAssertEqual(applied["added"] as? [String], [])
        XCTAssertEqual(applied["removed"] as? [String], [])
        XCTAssertEqual((applied["restarted"] as? [[String: String]]) ?? [], [["source": "door", "reason": "input changed"]])
        XCTAssertEqual(applied["needs_restart"] as? [String], ["workers"])
        let refusedLine = Record.reload(.init(.refused(errors: ["x.yaml:1: bad"]))).jsonLine()
        let refused = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(refusedLine.utf8)) as? [String: Any])
        XCTAssertEqual(refused["status"] as? String, "refused")
        XCTAssertEqual(refused["errors"] as? [String], ["x.yaml:1: bad"])
    }
}
