@testable import Daemon
import XCTest

/// STATUS= and heartbeat `fps`: the rate over the last 30 s, true also for sources far slower than one record per
/// status interval (one inference every few seconds on a slow machine).
final class RateMeterTests: XCTestCase {
    let start = ContinuousClock.now

    func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int(seconds * 1000)) }

    func testSlowSourceReadsItsTrueRate() {
        var meter = RateMeter(started: start)
        for t in stride(from: 5.0, through: 65, by: 10) { meter.count(at: at(t)) }   // one record per 10 s
        XCTAssertEqual(meter.perSecond(at: at(66)), 0.1, accuracy: 0.02)
        XCTAssertGreaterThan(meter.perSecond(at: at(69.9)), 0.05, "not 0 between two records")
    }

    func testSteadyRateAndGoingQuiet() {
        var meter = RateMeter(started: start)
        for i in 0..<400 { meter.count(at: at(Double(i) * 0.1)) }                   // 10 per second for 40 s
        XCTAssertEqual(meter.perSecond(at: at(40)), 10, accuracy: 0.5)
        XCTAssertEqual(meter.perSecond(at: at(100)), 0, "no records in the window")
    }

    func testFirstSecondsAreNotInflated() {
        var meter = RateMeter(started: start)
        meter.count(at: at(0.2))
        XCTAssertEqual(meter.perSecond(at: at(0.5)), 1, accuracy: 0.001, "one record is not 5 per second")
        XCTAssertEqual(meter.perSecond(at: at(4)), 0.25, accuracy: 0.001)
    }
}
