import Capture
import Foundation
import Logging

/// swift-log to stderr, one line per event, with the `<N>` priority prefixes journald reads (sd-daemon(3)),
/// so `journalctl -p warning` works without linking libsystemd.
public struct JournalLogHandler: LogHandler {
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
        StandardError.write("<\(Self.priority(event.level))>\(text)\n")
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
