import Daemon
import Detector
import XCTest

/// The config's `precision` key: auto by default, one of auto/f32/bf16/int8, anything else named with its line.
final class PrecisionConfigTests: XCTestCase {
    let sources = "sources:\n  - { name: cam, input: /dev/video0 }\n"

    func testDefaultsToAutoAndReadsEveryChoice() throws {
        XCTAssertEqual(try DaemonConfig.parse(sources, origin: "c.yaml").precision, .auto)
        for choice in PrecisionChoice.allCases {
            XCTAssertEqual(try DaemonConfig.parse("precision: \(choice.rawValue)\n" + sources, origin: "c.yaml").precision, choice)
        }
    }

    func testUnknownPrecisionIsNamedWithItsLine() {
        XCTAssertThrowsError(try DaemonConfig.parse(sources + "precision: int4\n", origin: "c.yaml")) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("c.yaml:3") && message.contains("precision") && message.contains("\"int4\""), message)
        }
    }
}
