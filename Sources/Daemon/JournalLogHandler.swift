import Capture
import Foundation
import Logging

/// swift-log to stderr, one line per event. When stderr is the journal, lines carry the `<N>` priority prefixes
/// journald reads (sd-daemon(3)), so `journalctl -p warning` works without linking libsystemd; anywhere else
/// (a terminal, a file) they start with the level's name instead.
public struct JournalLogHandler: LogHandler {
    /// Decided once: systemd sets `JOURNAL_STREAM` to the device and inode of the stream it connected.
    static let toJournal = isJournalStream(descriptor: 2, environment: ProcessInfo.processInfo.environment)

    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = merged.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
        let text = Redaction.redactingPasswords("\(event.message)\(fields)").replacingOccurrences(of: "\n", with: " ")
        StandardError.write(Self.toJournal ? "<\(Self.priority(event.level))>\(text)\n" : "\(event.level): \(text)\n")
    }

    /// Whether `descriptor` is the stream `JOURNAL_STREAM` ("DEV:INODE") names: a child whose stderr was
    /// redirected elsewhere inherits the variable, so it alone does not say the journal is listening.
    static func isJournalStream(descriptor: Int32, environment: [String: String]) -> Bool {
        let parts = (environment["JOURNAL_STREAM"] ?? "").split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}

/// Writes to stderr with write(2): FileHandle traps when stderr is a closed pipe.
public enum StandardError {
    public static func write(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
