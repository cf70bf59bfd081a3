import Foundation
import TestSupport
import XCTest

/// A config, model, label, sidecar, calibration or password file that is not a regular file (here a FIFO, which
/// nothing writes to: reading it would wait forever) is refused at once, by what it is, with the binary's usual
/// status 1. The generous timeouts only catch the hang this used to be.
final class NonRegularFileTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    var scratch: DaemonScratch!

    override func setUpWithError() throws { scratch = try DaemonScratch() }
    override func tearDown() { scratch?.remove() }

    func fifo(_ name: String) -> String {
        let path = scratch.dir.appendingPathComponent(name).path
        XCTAssertEqual(mkfifo(path, 0o644), 0, "mkfifo \(path)")
        return path
    }

    func assertRefused(_ arguments: [String], saying expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try runProcess(binary, arguments, timeout: 300)
        XCTAssertEqual(result.status, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.contains(expected), "expected \(expected) in:\n\(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.stdout, "", file: file, line: line)
    }

    func testAFIFOConfigIsRefused() throws {
        let config = fifo("sightline.yaml")
        for command in ["check", "run"] {
            try assertRefused([command, "--config", config], saying: "\(config): cannot read the config file: not a regular file (a FIFO)")
        }
    }

    func testAFIFOModelOrLabelFileIsRefused() throws {
        let model = fifo("model.pb"), labels = fifo("labels.txt")
        let image = TestPaths.media("messi5.jpg")
        try assertRefused(["detect", "--model", model, image], saying: "cannot read model \(model): not a regular file (a FIFO)")
        try assertRefused(["detect", "--labels", labels, image], saying: "cannot read labels \(labels): not a regular file (a FIFO)")

        let sources = "socket: { path: \(scratch.socketPath) }\nsources: [{ name: a, input: \(image) }]"
        try scratch.writeConfig("model: model.pb\n\(sources)")
        try assertRefused(["check", "--config", scratch.configPath],
                          saying: "sightline.yaml:1: model: cannot read model \(model): not a regular file (a FIFO)")
        try scratch.writeConfig("labels: labels.txt\n\(sources)")
        try assertRefused(["check", "--config", scratch.configPath],
                          saying: "sightline.yaml:1: labels: cannot read labels \(labels): not a regular file (a FIFO)")
    }

    /// The files read beside a model: its JSON sidecar and its calibration file.
    func testAFIFOBesideTheModelIsRefused() throws {
        let model = scratch.dir.appendingPathComponent("m.pb").path
        try FileManager.default.createSymbolicLink(atPath: model, withDestinationPath: TestPaths.model)
        let calibration = fifo("m.calibration.json")
        let image = TestPaths.media("messi5.jpg")
        try assertRefused(["detect", "--model", model, "--precision", "int8", image],
                          saying: "bad calibration file \(calibration): not a regular file (a FIFO)")
        let sidecar = fifo("m.json")
        try assertRefused(["detect", "--model", model, image], saying: "bad model settings file \(sidecar): not a regular file (a FIFO)")
    }

    func testAFIFOPasswordFileIsRefused() throws {
        let password = fifo("mqtt-password")
        try scratch.writeConfig("""
            socket: { path: \(scratch.socketPath) }
            sources: [{ name: a, input: \(TestPaths.media("messi5.jpg")) }]
            mqtt:
              host: 127.0.0.1
              username: sightline
              password_file: mqtt-password
            """)
        try assertRefused(["check", "--config", scratch.configPath],
                          saying: "sightline.yaml:6: mqtt.password_file: cannot read \(password): not a regular file (a FIFO)")
    }
}
