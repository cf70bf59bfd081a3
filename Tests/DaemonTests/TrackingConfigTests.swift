import Daemon
import Tracking
import XCTest

final class TrackingConfigTests: XCTestCase {
    func testTrackingIsOnByDefaultAndASourcesKeysWinOneByOne() throws {
        let config = try DaemonConfig.parse("""
            tracking: { min_hits: 4, max_age_seconds: 3 }
            sources:
              - { name: plain, input: /dev/video0 }
              - { name: counter, input: /dev/video1, tracking: { max_age_seconds: 10, iou_threshold: 0.2 } }
              - { name: quiet, input: /dev/video2, tracking: { enabled: false } }
            """, origin: "t.yaml")
        let top = TrackingParameters(minHits: 4, windowSeconds: 1, maxAgeSeconds: 3, iouThreshold: 0.2)
        XCTAssertEqual(config.tracking, TrackingSettings(enabled: true, parameters: top))
        XCTAssertEqual(config.trackingBySource["plain"], .some(top))
        XCTAssertEqual(config.trackingBySource["counter"],
                       .some(TrackingParameters(minHits: 4, windowSeconds: 1, maxAgeSeconds: 10, iouThreshold: 0.2)))
        XCTAssertEqual(config.trackingBySource["quiet"], .some(nil))
        XCTAssertEqual(config.detectorThresholds.lowScoreFloor, TrackingStage.lowScoreFloor, "low-score detections kept for the tracker")

        let defaults = try DaemonConfig.parse("sources: [{ name: a, input: /dev/video0 }]", origin: "t.yaml")
        XCTAssertEqual(defaults.trackingBySource["a"], .some(TrackingParameters.defaults))
        let off = try DaemonConfig.parse("tracking: { enabled: false }\nsources: [{ name: a, input: /dev/video0 }]", origin: "t.yaml")
        XCTAssertEqual(off.trackingBySource["a"], .some(nil))
        XCTAssertNil(off.detectorThresholds.lowScoreFloor, "nothing kept below the threshold when nothing is tracked")
    }

    func testBadTrackingKeysAreNamedWithTheirLine() {
        XCTAssertThrowsError(try DaemonConfig.parse("""
            tracking: { min_hits: 0, window_seconds: -1, max_age: 3, iou_threshold: 2, enabled: maybe }
            sources:
              - { name: a, input: /dev/video0, tracking: { max_age_seconds: "long" } }
            """, origin: "t.yaml")) { error in
            let problems = (error as? ConfigError)?.problems.map(\.description) ?? []
            XCTAssertEqual(problems, [
                "t.yaml:1: tracking.max_age: unknown key; known keys: enabled, min_hits, window_seconds, max_age_seconds, iou_threshold",
                #"t.yaml:1: tracking.enabled: must be true or false, got "maybe""#,
                "t.yaml:1: tracking.min_hits: must be between 1 and 1000, got 0",
                "t.yaml:1: tracking.window_seconds: must be between 0.01 and 3600 seconds, got -1",
                "t.yaml:1: tracking.iou_threshold: must be between 0.01 and 1, got 2",
                #"t.yaml:3: sources[0].tracking.max_age_seconds: must be a number, got "long""#,
            ])
        }
    }

    func testTrackingChangesApplyWithoutRestartingTheSource() throws {
        let before = try DaemonConfig.parse("sources: [{ name: a, input: /dev/video0 }]", origin: "t.yaml")
        let after = try DaemonConfig.parse("""
            tracking: { max_age_seconds: 5 }
            sources: [{ name: a, input: /dev/video0, tracking: { min_hits: 2 } }]
            """, origin: "t.yaml")
        let changes = before.changes(to: after)
        XCTAssertEqual(changes.changed, ["tracking", "sources.a.tracking"])
        XCTAssertEqual(changes.restarted, [])
    }
}
