import Daemon
import Foundation
import TestSupport
import XCTest

/// What `check` and `run` refuse beyond the file itself, each with the key and line that named it.
final class PreflightTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func preflight(_ yaml: String, runtimeDirectoryMayBeAbsent: Bool = false) throws -> Preflight {
        let file = dir.appendingPathComponent("p.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        let config = try DaemonConfig.load(path: file.path)
        return Preflight(config, origin: "p.yaml", defaultModel: TestPaths.model, runtimeDirectoryMayBeAbsent: runtimeDirectoryMayBeAbsent)
    }

    private var socketLine: String { "socket: { path: \(dir.path)/s.sock }" }

    func testAValidConfigLoadsTheModel() throws {
        let result = try preflight("\(socketLine)\nthresholds: { person: 0.6 }\nsources: [{ name: a, input: /dev/video0 }]\n")
        XCTAssertEqual(result.problems, [])
        XCTAssertEqual(result.model?.labelNames, ["person"])
    }

    func testMissingOrUnreadableLabelsFile() throws {
        let missing = try preflight("\(socketLine)\nlabels: nowhere.txt\nsources: [{ name: a, input: /dev/video0 }]\n")
        XCTAssertEqual(missing.problems.map(\.description),
                       ["p.yaml:2: labels: cannot read labels \(dir.path)/nowhere.txt: no such file"])
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("labels.d"), withIntermediateDirectories: true)
        let directory = try preflight("\(socketLine)\nlabels: labels.d\nsources: [{ name: a, input: /dev/video0 }]\n")
        XCTAssertEqual(directory.problems.map(\.description), ["p.yaml:2: labels: cannot read labels \(dir.path)/labels.d: is a directory"])
        XCTAssertFalse(directory.problems.description.contains("cannot read model"), "a labels file is not called a model")
    }

    func testModelThatIsMissingOrNotAModel() throws {
        let missing = try preflight("model: /nonexistent/m.pb\n\(socketLine)\nsources: [{ name: a, input: /dev/video0 }]\n")
        XCTAssertEqual(missing.problems.map(\.description), ["p.yaml:1: model: cannot read model /nonexistent/m.pb: no such file"])
        XCTAssertNil(missing.model)
        let text = dir.appendingPathComponent("notes.pb")
        try "this is not a graph\n".write(to: text, atomically: true, encoding: .utf8)
        let bogus = try preflight("\(socketLine)\nmodel: notes.pb\nsources: [{ name: a, input: /dev/video0 }]\n")
        XCTAssertEqual(bogus.problems.count, 1)
        XCTAssertEqual(bogus.problems.first?.keyPath, "model")
        XCTAssertEqual(bogus.problems.first?.line, 2)
        XCTAssertTrue(bogus.problems.first?.message.contains("not a TensorFlow GraphDef") ?? false, "\(bogus.problems)")
    }

    func testUnknownLabelsInThresholds() throws {
        let result = try preflight("""
            \(socketLine)
            thresholds: { persn: 0.6 }
            sources:
              - name: a
                input: /dev/video0
                thresholds: { person: 0.3, car: 0.2 }
            """)
        XCTAssertEqual(result.problems.map(\.description), [
            #"p.yaml:2: thresholds.persn: unknown label "persn" (did you mean "person"?); the model's labels: person"#,
            #"p.yaml:6: sources[0].thresholds.car: unknown label "car"; the model's labels: person"#,
        ])
    }

    func testUnknownSocketGroup() throws {
        let result = try preflight("socket: { path: \(dir.path)/s.sock, group: no-such-group-sightline }\nsources: [{ name: a, input: b }]\n")
        XCTAssertEqual(result.problems.map(\.description), ["p.yaml:1: socket.group: unknown group no-such-group-sightline"])
    }

    func testMissingSocketDirectory() throws {
        let result = try preflight("socket:\n  path: \(dir.path)/missing/s.sock\nsources: [{ name: a, input: b }]\n")
        XCTAssertEqual(result.problems.map(\.description), ["p.yaml:2: socket.path: cannot create \(dir.path)/missing/s.sock: the directory \(dir.path)/missing does not exist"])
        // systemd creates /run/sightline when the service starts, so `check` only notes its absence, for the
        // subscribers' socket and for HTTP's.
        let runtime = try preflight("http: { listen: \"unix:/run/sightline/http.sock\" }\nsources: [{ name: a, input: b }]\n",
                                    runtimeDirectoryMayBeAbsent: true)
        if !FileManager.default.fileExists(atPath: DaemonConfig.Socket.runtimeDirectory) {
            XCTAssertEqual(runtime.problems, [])
            XCTAssertEqual(runtime.notes.count, 2, "\(runtime.notes)")
        }
    }
}
