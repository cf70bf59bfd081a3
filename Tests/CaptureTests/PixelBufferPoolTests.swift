import Values
import XCTest

final class PixelBufferPoolTests: XCTestCase {
    func testABufferGivenBackTwiceIsCaughtAndPooledOnce() {
        let pool = PixelBufferPool()
        let buffer = pool.take(width: 4, height: 4)
        XCTAssertTrue(buffer.recycle())
        XCTAssertFalse(buffer.recycle(), "the second give-back is refused")
        let first = pool.take(width: 4, height: 4)
        let second = pool.take(width: 4, height: 4)
        XCTAssertTrue(first === buffer, "the idle buffer is reused")
        XCTAssertFalse(second === buffer, "one buffer never goes to two frames at once")
    }

    func testABufferTakenAgainGoesBackAgain() {
        let pool = PixelBufferPool()
        let buffer = pool.take(width: 4, height: 4)
        XCTAssertTrue(buffer.recycle())
        XCTAssertTrue(pool.take(width: 4, height: 4) === buffer)
        XCTAssertTrue(buffer.recycle(), "each lease is given back once")
    }
}
