import ArgumentParser
import Daemon
import Foundation

struct Tail: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Subscribe to a running daemon and print its records.")

    @Argument(help: "The daemon's Unix socket.")
    var socket: String = DaemonConfig.Socket.defaultPath

    @Flag(help: "Print the raw JSON lines instead of one readable line per detection.")
    var raw = false

    func run() throws {
        let fd = try failingCleanly { try connectUnix(socket) }
        defer { close(fd) }
        signal(SIGPIPE, SIG_IGN)
        let output = StandardOutput()
        var pending = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            pending.append(contentsOf: buffer[0..<n])
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[pending.startIndex..<newline]
                pending.removeSubrange(pending.startIndex...newline)
                if raw {
                    output.write(String(decoding: line, as: UTF8.self) + "\n")
                } else {
                    for text in Self.readable(line) { output.write(text + "\n") }
                }
                if output.isClosed { return }
            }
        }
        reportError("\(socket): the daemon closed the connection")
        throw ExitCode(1)
    }

    /// One line per detection, or per service record.
    static func readable(_ line: Data) -> [String] {
        guard let record = try? JSONSerialization.jsonObject(with: line) as? [String: Any], let type = record["type"] as? String else {
            return [String(decoding: line, as: UTF8.self)]
        }
        let time = (record["time"] as? String).map { String($0.dropFirst(11).prefix(12)) } ?? ""
        let source = record["source"] as? String ?? ""
        switch type {
        case "detections":
            let frame = record["frame"] as? Int ?? 0
            let detections = record["detections"] as? [[String: Any]] ?? []
            return detections.map { d in
                let box = d["box"] as? [String: Double] ?? [:]
                let corners = ["xmin", "ymin", "xmax", "ymax"].map { String(format: "%.3f", box[$0] ?? 0) }.joined(separator: " ")
                return "\(time) \(source) #\(frame) \(d["label"] as? String ?? "?") \(String(format: "%.2f", d["score"] as? Double ?? 0)) [\(corners)]"
            }
        case "hello":
            return ["\(time) connected: schema \(record["schema"] ?? "?"), sources \((record["sources"] as? [String] ?? []).joined(separator: ", "))"]
        case "source_down":
            return ["\(time) \(source) DOWN: \(record["reason"] as? String ?? "")"]
        case "source_up":
            return ["\(time) \(source) up"]
        case "lag":
            return ["\(time) (this subscriber fell behind: \(record["dropped"] ?? 0) records skipped)"]
        default:
            return []
        }
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
