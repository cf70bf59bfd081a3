import Daemon
import Foundation
import TestSupport
import XCTest

/// `${NAME}` and `${credential:NAME}` in config strings, and passwords kept out of messages.
final class ConfigSecretsTests: XCTestCase {
    func testEnvironmentVariablesAreSubstitutedInStrings() throws {
        let yaml = """
            socket: { group: "${SOCKET_GROUP}" }
            sources:
              - name: door-${SITE}
                input: "rtsp://admin:${CAM_PASSWORD}@cam/stream"
              - name: literal
                input: "rtsp://u:pa$$${word}@cam/$HOME"
            """
        let config = try DaemonConfig.parse(yaml, origin: "e.yaml",
                                            environment: ["CAM_PASSWORD": "hunter2", "SITE": "north", "SOCKET_GROUP": "video"])
        XCTAssertEqual(config.sources.map(\.name), ["door-north", "literal"])
        XCTAssertEqual(config.sources.first?.input, "rtsp://admin:hunter2@cam/stream")
        XCTAssertEqual(config.socket.group, "video")
        // `$${` is a literal `${`; a `$` not followed by `{` is left alone.
        XCTAssertEqual(config.sources.last?.input, "rtsp://u:pa$${word}@cam/$HOME")
    }

    func testUnsetOrMalformedReferencesAreErrorsWithKeyAndLine() {
        let yaml = """
            sources:
              - name: door
                input: "rtsp://admin:${CAM_PASSWORD}@cam/stream"
              - name: "${1BAD}"
                input: "rtsp://cam/${UNCLOSED"
            """
        XCTAssertThrowsError(try DaemonConfig.parse(yaml, origin: "e.yaml", environment: [:])) { error in
            XCTAssertEqual("\(error)", """
                e.yaml:3: sources[0].input: environment variable CAM_PASSWORD is not set
                e.yaml:4: sources[1].name: "${1BAD}": write ${NAME} for an environment variable or ${credential:NAME} for a systemd credential
                e.yaml:5: sources[1].input: unterminated "${" (write "$${" for a literal "${")
                """)
        }
    }

    func testSystemdCredentialsAreRead() throws {
        let credentials = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: credentials) }
        try "s3cret\n".write(to: credentials.appendingPathComponent("cam-password"), atomically: true, encoding: .utf8)
        let yaml = """
            sources:
              - name: door
                input: "rtsp://admin:${credential:cam-password}@cam/stream"
            """
        let config = try DaemonConfig.parse(yaml, origin: "c.yaml", environment: ["CREDENTIALS_DIRECTORY": credentials.path])
        XCTAssertEqual(config.sources.map(\.input), ["rtsp://admin:s3cret@cam/stream"], "one trailing newline is dropped")

        XCTAssertThrowsError(try DaemonConfig.parse(yaml, origin: "c.yaml", environment: [:])) { error in
            XCTAssertEqual("\(error)", #"c.yaml:3: sources[0].input: credential "cam-password": $CREDENTIALS_DIRECTORY is not set (give the unit LoadCredential=cam-password:FILE, see docs/CONFIG.md)"#)
        }
        let missing = yaml.replacingOccurrences(of: "cam-password", with: "other")
        XCTAssertThrowsError(try DaemonConfig.parse(missing, origin: "c.yaml", environment: ["CREDENTIALS_DIRECTORY": credentials.path])) { error in
            XCTAssertEqual("\(error)", #"c.yaml:3: sources[0].input: credential "other": no such file \#(credentials.path)/other"#)
        }
        let escaping = yaml.replacingOccurrences(of: "cam-password", with: "../etc/passwd")
        XCTAssertThrowsError(try DaemonConfig.parse(escaping, origin: "c.yaml", environment: ["CREDENTIALS_DIRECTORY": credentials.path])) { error in
            XCTAssertTrue("\(error)".contains("a credential name is letters, digits"), "\(error)")
        }
    }

    func testLoadTakesTheProcessEnvironmentByDefault() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("s.yaml")
        try "sources: [{ name: a, input: \"${HOME}/clip.mp4\" }]\n".write(to: file, atomically: true, encoding: .utf8)
        let home = try XCTUnwrap(ProcessInfo.processInfo.environment["HOME"])
        XCTAssertEqual(try DaemonConfig.load(path: file.path).sources.map(\.input), ["\(home)/clip.mp4"])
    }

    func testProblemsNeverShowAPassword() {
        let yaml = """
            sources:
              - name: door
                input: rtsp://admin:hunter2@cam/stream
                policy: "rtsp://admin:hunter2@cam/stream"
            """
        XCTAssertThrowsError(try DaemonConfig.parse(yaml, origin: "p.yaml")) { error in
            XCTAssertFalse("\(error)".contains("hunter2"), "\(error)")
            XCTAssertTrue("\(error)".contains("rtsp://admin:***@cam/stream"), "\(error)")
        }
    }
}
