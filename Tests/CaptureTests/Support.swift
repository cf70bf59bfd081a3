import Capture
import Foundation
import Values
import XCTest

/// Sample media fetched by scripts/setup.sh into the repo's git-ignored .cache folder.
enum Media {
    /// The repo root: the first folder above this file holding Package.swift. Symlinks are resolved
    /// first so a scratch package that links Tests/CaptureTests still finds the repo's media.
    static let root: URL = {
        var url = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            precondition(url.path != "/", "no Package.swift above \(#filePath)")
            url.deleteLastPathComponent()
        }
        return url
    }()

    /// Path of a sample file; fails the test (rather than skipping) when setup.sh has not been run.
    static func path(_ name: String) throws -> String {
        let path = root.appendingPathComponent(".cache/media/\(name)").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw TestFailure("missing \(path): run scripts/setup.sh")
        }
        return path
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A scratch directory removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("capture-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Runs the ffmpeg CLI and fails unless it exits 0.
func runFFmpeg(_ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["ffmpeg", "-v", "error", "-nostdin", "-y"] + arguments
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestFailure("ffmpeg \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
    }
}

/// Streams the RGB24 frames the ffmpeg CLI produces for `path` — the command the detector's parity fixtures come from.
final class ReferenceFrames {
    private let process = Process()
    private let output: FileHandle

    init(path: String) throws {
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-map", "0:v:0",
                             "-f", "rawvideo", "-pix_fmt", "rgb24", "-sws_flags", "bilinear", "pipe:1"]
        process.standardOutput = pipe
        output = pipe.fileHandleForReading
        try process.run()
    }

    deinit {
        // ffmpeg restarts a write to a full pipe after SIGTERM, so a mismatching test would hang on it; kill it.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// The next frame's packed bytes, or nil once ffmpeg's output ends.
    func next(width: Int, height: Int) throws -> Data? {
        let size = width * height * 3
        var data = Data(capacity: size)
        while data.count < size {
            guard let chunk = try output.read(upToCount: size - data.count), !chunk.isEmpty else { break }
            data.append(chunk)
        }
        if data.isEmpty { return nil }
        guard data.count == size else {
            throw TestFailure("ffmpeg wrote a short frame: \(data.count) of \(size) bytes")
        }
        return data
    }
}

/// Number of bytes where `frame` differs from the packed `reference`, and the largest difference.
func compare(_ frame: Frame, with reference: Data) -> (differing: Int, maxDelta: Int) {
    let rowLength = frame.width * 3
    // A reference of another size differs everywhere (and must not be read past its end).
    guard reference.count == rowLength * frame.height else { return (max(reference.count, rowLength * frame.height), 255) }
    var differing = 0, maxDelta = 0
    reference.withUnsafeBytes { expected in
        for y in 0..<frame.height {
            let row = frame.pixels.bytes.advanced(by: y * frame.pixels.rowBytes).assumingMemoryBound(to: UInt8.self)
            let rowStart = y * rowLength
            if memcmp(row, expected.baseAddress! + rowStart, rowLength) == 0 { continue }
            for x in 0..<rowLength {
                let delta = abs(Int(row[x]) - Int(expected[rowStart + x]))
                if delta > 0 {
                    differing += 1
                    maxDelta = max(maxDelta, delta)
                }
            }
        }
    }
    return (differing, maxDelta)
}

/// A loopback TCP server that accepts one client, sends it `prefix`, then goes silent without closing,
/// like a camera or server that has stalled.
final class StallingServer: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32
    private let stopped = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// Signalled once the client has been sent the whole prefix.
    let sent = DispatchSemaphore(value: 0)

    init(sending prefix: Data = Data()) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(listener, pointer, length) == 0 && listen(listener, 1) == 0
                    && getsockname(listener, pointer, &length) == 0
            }
        }
        guard bound else {
            Glibc.close(listener)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        self.listener = listener
        port = UInt16(bigEndian: address.sin_port)

        let thread = Thread { [listener, stopped, finished, sent] in
            defer { finished.signal() }
            // Bounded wait for the client, so a test that never connects cannot hang here.
            var waiting = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&waiting, 1, 120_000) == 1 else { return }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            defer { Glibc.close(client) }
            // A client that stops reading must not block send() (and so stop()) for ever; one merely slowed by load
            // must not be taken for it.
            var sendTimeout = timeval(tv_sec: 120, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
            prefix.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    // MSG_NOSIGNAL: a client that hangs up must not SIGPIPE the test process.
                    let written = send(client, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                    if written <= 0 { return }
                    offset += written
                }
            }
            sent.signal()
            stopped.wait()
        }
        thread.start()
    }

    func stop() {
        stopped.signal()
        // Unblocks poll() if no client ever came.
        shutdown(listener, Int32(SHUT_RDWR))
        finished.wait()
        Glibc.close(listener)
    }
}
