import Foundation
import Values
import XCTest

final class NamedThreadTests: XCTestCase {
    func testNamesAreCutToWhatLinuxKeepsOnACharacterBoundary() {
        XCTAssertEqual(Thread.fittingName("sl-worker-0"), "sl-worker-0")
        XCTAssertEqual(Thread.fittingName("exactly-15-byte"), "exactly-15-byte")
        XCTAssertEqual(Thread.fittingName("sl-capture-12345"), "sl-capture-1234")
        // "é" is two bytes: the cut falls before the character that would be split.
        XCTAssertEqual(Thread.fittingName("sl-cap-ééééé"), "sl-cap-éééé")
        XCTAssertEqual(Thread.fittingName("sl-cap-eéééé"), "sl-cap-eééé")
        XCTAssertEqual(Thread.fittingName("sl-cap-eeéééé"), "sl-cap-eeééé")
    }

    /// The names the kernel holds for this process's threads, as `top -H` reads them.
    func threadNames() -> [String] {
        let tids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tids.compactMap { tid in
            (try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines)
        }
    }

    func testTheKernelShowsTheName() {
        for (given, shown) in [("sl-test-named", "sl-test-named"), ("sl-test-a-much-longer-name", "sl-test-a-much-")] {
            XCTAssertFalse(threadNames().contains(shown))
            let started = DispatchSemaphore(value: 0), finish = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
            Thread(named: given) {
                started.signal()
                finish.wait()
                finished.signal()
            }.start()
            XCTAssertEqual(started.wait(timeout: .now() + 60), .success)
            XCTAssertTrue(threadNames().contains(shown), "\(threadNames())")
            finish.signal()
            XCTAssertEqual(finished.wait(timeout: .now() + 60), .success)
        }
    }
}
