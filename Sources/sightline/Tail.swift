import ArgumentParser
import Daemon
import Foundation
import Sink
import Values

struct Tail: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Subscribe to a running daemon and print its records.",
        discussion: """
            Without --raw, each detection is one line:
              TIME SOURCE #FRAME LABEL SCORE [XMIN YMIN XMAX YMAX]
            e.g. `21:14:03.120 door #512 person 0.91 [0.412 0.205 0.530 0.771]`: the record's time (UTC, to the
            millisecond), the source's name, the frame index, the label, the score, and the box as fractions of the
            frame's width and height (x across, y down). Frames with no detection print nothing. Service records
            print as one line each: `connected` (with every source's up/down state), `SOURCE up`, `SOURCE DOWN: reason`,
            and skipped records when this subscriber fell behind; tracking events as `SOURCE + LABEL #ID` (appeared),
            `SOURCE - LABEL #ID after 12.3 s (reason)` (left) and `SOURCE LABEL: COUNT` (how many are there now); a record of
            a type this version does not know (from a newer daemon) prints as it came. Control characters in what it
            prints (a source named with an escape sequence, say) are written as \\u001b and so on, never sent to the terminal.
            --events asks the daemon for the tracking events only; --type and --source choose record types and sources. --raw prints the JSON lines themselves
            (docs/SCHEMA.md), for scripts: e.g. a Node-RED exec node.

            When the daemon goes away (a restart, say), tail says so on stderr and reconnects until it is back,
            unless --once is given; then it exits with status 1. A socket that does not greet it with a hello record \
            within 10 s (the daemon's HTTP socket, say) is not the daemon's: tail says so and exits with status 1.
            """)

    @Argument(help: "The daemon's Unix socket.")
    var socket: String = DaemonConfig.Socket.defaultPath

    @Flag(help: "Print the raw JSON lines instead of one readable line per detection.")
    var raw = false

    @Flag(help: "Exit (status 1) when the connection ends or cannot be made, instead of reconnecting.")
    var once = false

    @Flag(help: "Only the tracking events: object_start, object_end and presence.")
    var events = false

    @Option(name: .customLong("type"), help: "Only records of this type (repeatable): \(Subscription.types.joined(separator: ", ")).")
    var types: [String] = []

    @Option(name: .customLong("source"), help: "Only records of this source (repeatable); records of no source (reload) still come.")
    var sources: [String] = []

    /// What to ask the daemon for; nil: everything.
    var subscription: Subscription? {
        let chosen = (events ? ["object_start", "object_end", "presence"] : []) + types
        guard !chosen.isEmpty || !sources.isEmpty else { return nil }
        return Subscription(types: chosen.isEmpty ? nil : chosen, sources: sources.isEmpty ? nil : sources)
    }

    func validate() throws {
        if let unknown = types.first(where: { !Subscription.types.contains($0) }) {
            throw ValidationError("--type \(unknown): unknown record type; types: \(Subscription.types.joined(separator: ", "))")
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let output = StandardOutput()
        var retry = Duration.milliseconds(250)
        var lastProblem: String?
        while true {
            let fd: Int32
            do {
                fd = try connectUnix(socket)
            } catch {
                guard !once else {
                    reportError(error)
                    throw ExitCode(1)
                }
                // Said once per kind of problem, not on every attempt.
                let problem = "\(error)"
                if problem != lastProblem { reportError("\(problem); retrying until the daemon is back (--once to exit instead)") }
                lastProblem = problem
                Thread.sleep(forTimeInterval: retry / .seconds(1))
                retry = min(retry * 2, .seconds(5))
                continue
            }
            if lastProblem != nil { reportError("\(socket): connected again") }
            retry = .milliseconds(250)
            if let subscription { sendLine(subscription.requestLine(), to: fd) }
            let ended = copyRecords(from: fd, to: output, awaitingSubscribed: subscription != nil)
            close(fd)
            if output.isClosed { return }
            if case .notSightline(let what) = ended {
                reportError("\(socket): \(what): this is not a Sightline daemon's subscriber socket")
                throw ExitCode(1)
            }
            guard !once else {
                reportError("\(socket): \(ended)")
                throw ExitCode(1)
            }
            lastProblem = "\(socket): \(ended)"
            reportError("\(socket): \(ended); reconnecting")
        }
    }

    /// Prints records until the connection ends (or our reader goes away); returns how it ended.
    /// Until the daemon answers a subscription with `subscribed`, it still sends everything: those records are not
    /// what was asked for, so only the hello and errors pass.
    private func copyRecords(from fd: Int32, to output: StandardOutput, awaitingSubscribed: Bool) -> Ending {
        var awaitingSubscribed = awaitingSubscribed
        var greeted = false
        var pending = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        // The daemon says hello as it accepts; something else (its HTTP socket, say) may say nothing, ever.
        setReceiveTimeout(fd, seconds: Self.helloSeconds)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 && !greeted && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return .notSightline("no hello within \(Self.helloSeconds) s")
            }
            if n < 0 { return .ended("reading failed: \(String(cString: strerror(errno)))") }
            if n == 0 { return .ended("the daemon closed the connection") }
            pending.append(contentsOf: buffer[0..<n])
            guard pending.count <= Self.longestLine else { return .notSightline("a line longer than \(Self.longestLine >> 20) MB") }
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[pending.startIndex..<newline]
                pending.removeSubrange(pending.startIndex...newline)
                if !greeted {
                    switch try? Record(jsonLine: String(decoding: line, as: UTF8.self)) {
                    case .hello, .error:
                        greeted = true
                        setReceiveTimeout(fd, seconds: 0)
                    default:
                        return .notSightline("its first line is not a hello record")
                    }
                }
                if awaitingSubscribed {
                    switch try? Record(jsonLine: String(decoding: line, as: UTF8.self)) {
                    case .subscribed: awaitingSubscribed = false
                    case .hello, .error: break
                    default: continue
                    }
                }
                if raw {
                    output.write(String(decoding: line, as: UTF8.self) + "\n")
                } else {
                    for text in Self.readable(line) { output.write(Self.escapingControls(text) + "\n") }
                }
                if output.isClosed { return .ended("output closed") }
            }
        }
    }

    /// How a connection ended: an ordinary end (tail reconnects unless --once) or a socket that is not the daemon's.
    private enum Ending: CustomStringConvertible {
        case ended(String)
        case notSightline(String)
        var description: String {
            switch self {
            case .ended(let how), .notSightline(let how): how
            }
        }
    }

    static let helloSeconds = 10
    /// Far beyond any record (a detections record with 100 boxes is about 20 kB).
    static let longestLine = 16 << 20

    private func setReceiveTimeout(_ fd: Int32, seconds: Int) {
        var limit = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    /// `text` with each control character (C0, DEL, C1) written as `\u001b` and so on. What tail prints comes from the
    /// daemon's config, inputs and label file (a source named with an ESC sequence, say): printed as it is, it could
    /// move the cursor, rewrite the screen or split one record's line in two.
    static func escapingControls(_ text: String) -> String {
        func isControl(_ scalar: Unicode.Scalar) -> Bool { scalar.properties.generalCategory == .control }  // C0, DEL, C1
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var escaped = ""
        for scalar in text.unicodeScalars {
            if isControl(scalar) { escaped += String(format: "\\u%04x", scalar.value) } else { escaped.unicodeScalars.append(scalar) }
        }
        return escaped
    }

    /// One line per detection, or per service record; a line that is not a record, or a record of a type this build
    /// does not know (a newer daemon's), as it came.
    static func readable(_ line: Data) -> [String] {
        let text = String(decoding: line, as: UTF8.self)
        guard let record = try? Record(jsonLine: text) else { return [text] }
        func clock(_ time: Date) -> String { String(RFC3339.format(time).dropFirst(11).prefix(12)) }
        switch record {
        case .detections(let r):
            return r.detections.map { d in
                let corners = [d.xmin, d.ymin, d.xmax, d.ymax].map { String(format: "%.3f", Double($0)) }.joined(separator: " ")
                return "\(clock(r.time)) \(r.source) #\(r.frame) \(d.label) \(String(format: "%.2f", Double(d.score))) [\(corners)]"
            }
        case .hello(let r):
            let sources = r.sources.map { "\($0) (\(r.up.contains($0) ? "up" : "down"))" }
            return ["\(clock(r.time)) connected: schema \(r.schema), sources \(sources.joined(separator: ", "))"]
        case .sourceDown(let r):
            return ["\(clock(r.time)) \(r.source) DOWN: \(r.reason)"]
        case .sourceUp(let r):
            return ["\(clock(r.time)) \(r.source) up"]
        case .lag(let r):
            return ["\(clock(r.time)) (this subscriber fell behind: \(r.dropped) records skipped)"]
        case .objectStart(let r):
            return ["\(clock(r.time)) \(r.source) + \(r.label) #\(r.trackID)"]
        case .objectEnd(let r):
            return ["\(clock(r.time)) \(r.source) - \(r.label) #\(r.trackID) after \(String(format: "%.1f", r.durationSeconds)) s (\(r.reason.rawValue))"]
        case .presence(let r):
            return ["\(clock(r.time)) \(r.source) \(r.label): \(r.count)"]
        case .error(let r):
            return ["\(clock(r.time)) ERROR: \(r.reason) \(r.detail ?? "")"]
        case .heartbeat, .reload, .subscribed:
            return []
        case .unknown:
            return [text]
        }
    }
}

/// Writes a whole line to a connected socket (a request is small: one send normally takes it).
func sendLine(_ line: String, to fd: Int32) {
    let bytes = Array(line.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return }
        offset += n
    }
}

func connectUnix(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw CommandError("\(path): cannot create a socket: \(String(cString: strerror(errno)))") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
        close(fd)
        throw CommandError("\(path): socket path too long")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard result == 0 else {
        let reason = String(cString: strerror(errno))
        close(fd)
        throw CommandError("cannot connect to \(path): \(reason)")
    }
    return fd
}
