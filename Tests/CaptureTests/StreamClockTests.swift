@testable import Capture
import XCTest

final class StreamClockTests: XCTestCase {
    func testFramesOnTimeHaveNoAge() {
        var clock = StreamClock()
        // 25 fps arriving with jitter of up to 30 ms: the best case sets the offset, the rest are a little late.
        for index in 0..<250 {
            let pts = 100 + Double(index) * 0.04
            let age = clock.age(pts: pts, arrival: 5 + Double(index) * 0.04 + Double(index % 4) * 0.01)
            XCTAssertLessThanOrEqual(age, 0.031, "frame \(index)")
        }
    }

    func testABacklogAfterAStallCarriesItsAge() {
        var clock = StreamClock()
        var time = 0.0
        for index in 0..<50 { _ = clock.age(pts: Double(index) * 0.04, arrival: time); time += 0.04 }
        // Nothing arrives for 4 s; then the 100 frames captured meanwhile come in one burst.
        time += 4
        let ages = (50..<150).map { clock.age(pts: Double($0) * 0.04, arrival: time) }
        XCTAssertEqual(ages.first ?? 0, 4, accuracy: 0.01, "the oldest held frame is 4 s old")
        XCTAssertEqual(ages.last ?? 0, 0.04, accuracy: 0.01, "the newest is nearly fresh")
        XCTAssertEqual(ages, ages.sorted(by: >), "older frames are older")
    }

    func testASlowSenderClockIsFollowed() {
        // The sender's clock runs 500 ppm slow: over an hour its frames seem to arrive 1.8 s later and later.
        var clock = StreamClock()
        var worst = 0.0
        for index in 0..<(3600 * 5) {
            let pts = Double(index) * 0.2
            worst = max(worst, clock.age(pts: pts, arrival: pts * 1.0005))
        }
        XCTAssertLessThan(worst, 0.01, "drift is absorbed, not reported as age")
    }

    func testTimestampsThatJumpBackStartOver() {
        var clock = StreamClock()
        for index in 0..<10 { _ = clock.age(pts: 1000 + Double(index), arrival: Double(index)) }
        // The camera restarted its stream: timestamps begin again near 0.
        XCTAssertEqual(clock.age(pts: 0, arrival: 10), 0)
        XCTAssertEqual(clock.age(pts: 1, arrival: 11), 0)
        // A jump forward just lowers the offset.
        XCTAssertEqual(clock.age(pts: 5000, arrival: 12), 0)
        XCTAssertEqual(clock.age(pts: 5001, arrival: 13), 0)
    }

    func testTimestampsThatAreNotNumbersGiveNoAge() {
        var clock = StreamClock()
        XCTAssertEqual(clock.age(pts: .nan, arrival: 1), 0)
        XCTAssertEqual(clock.age(pts: .infinity, arrival: 2), 0)
        XCTAssertEqual(clock.age(pts: 10, arrival: 3), 0)
        XCTAssertEqual(clock.age(pts: 10.04, arrival: 3.04), 0, accuracy: 1e-9)
    }
}
