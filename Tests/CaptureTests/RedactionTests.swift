import Capture
import XCTest

final class RedactionTests: XCTestCase {
    func testPasswordsInURLsAreMasked() {
        let cases: [(String, String)] = [
            ("rtsp://admin:hunter2@cam/stream", "rtsp://admin:***@cam/stream"),
            ("http://admin:hunter2@10.0.0.5:8080/video?x=1", "http://admin:***@10.0.0.5:8080/video?x=1"),
            ("rtsp://user:p%40ss:w@cam", "rtsp://user:***@cam"),
            // A literal '@' in the password: the host follows the last '@' of the authority.
            ("rtsp://user:a@b@cam/x", "rtsp://user:***@cam/x"),
            ("source up input=rtsp://u:secret@h/s source=door", "source up input=rtsp://u:***@h/s source=door"),
            (#"{"input":"rtsp://u:secret@h"}"#, #"{"input":"rtsp://u:***@h"}"#),
            ("two: http://a:x@h1/ and rtsp://b:y@h2", "two: http://a:***@h1/ and rtsp://b:***@h2"),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(Redaction.redactingPasswords(text), expected, text)
        }
    }

    func testTextWithoutPasswordsIsUnchanged() {
        for text in ["rtsp://cam/stream", "rtsp://token@cam/stream", "/srv/video/a:b@c.mp4", "http://host:8080/x@y",
                     "no url here", "", "://", "rtsp://", "ends with ://a:b"] {
            XCTAssertEqual(Redaction.redactingPasswords(text), text)
        }
    }

    func testCaptureErrorsNameTheInputWithoutItsPassword() {
        let error = CaptureError(input: "rtsp://admin:hunter2@cam/stream", reason: "opening failed: Connection refused")
        XCTAssertEqual("\(error)", "rtsp://admin:***@cam/stream: opening failed: Connection refused")
    }
}
