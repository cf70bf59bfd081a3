import Foundation

/// A finished run of a real process: its exit status and everything it printed.
public struct ProcessResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
    public var stdoutLines: [Substring] { stdout.split(separator: "\n") }
    public var stderrLines: [Substring] { stderr.split(separator: "\n") }
}

public enum ProcessRunError: Error { case timedOut(String) }

/// Runs `executable` with `arguments` to completion (killed after `timeout`), capturing both streams.
/// The default timeout only catches a hang: how long a run takes depends on the machine and its load.
public func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                       timeout: TimeInterval = 600) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Read both pipes concurrently so a chatty process cannot block on a full pipe.
    let collected = CollectedOutput()
    let group = DispatchGroup()
    for (pipe, isOut) in [(out, true), (err, false)] {
        group.enter()
        DispatchQueue.global().async {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            collected.set(data, stdout: isOut)
            group.leave()
        }
    }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        throw ProcessRunError.timedOut("\(executable) \(arguments.joined(separator: " "))")
    }
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: collected.stdout, as: UTF8.self),
                         stderr: String(decoding: collected.stderr, as: UTF8.self))
}

private final class CollectedOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var out = Data(), err = Data()
    func set(_ data: Data, stdout: Bool) { lock.withLock { if stdout { out = data } else { err = data } } }
    var stdout: Data { lock.withLock { out } }
    var stderr: Data { lock.withLock { err } }
}
