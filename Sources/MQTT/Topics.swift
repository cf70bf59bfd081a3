import Foundation

/// The topic layout of docs/MQTT.md (version `Topics.version`).
public struct Topics: Sendable, Equatable {
    /// Bumped when a topic or payload changes incompatibly; additions keep it.
    public static let version = 1

    public let prefix: String

    public init(prefix: String) { self.prefix = prefix }

    /// `online`/`offline`, retained; `offline` is also the Last Will.
    public var available: String { "\(prefix)/available" }
    public var stats: String { "\(prefix)/stats" }
    /// The count of messages dropped while the broker was away, sent once it is back.
    public var dropped: String { "\(prefix)/dropped" }
    public func events(_ source: String) -> String { "\(prefix)/\(source)/events" }
    public func detections(_ source: String) -> String { "\(prefix)/\(source)/detections" }
    public func state(_ source: String) -> String { "\(prefix)/\(source)/state" }
    /// The retained count of confirmed objects of `label`.
    public func count(_ source: String, _ label: String) -> String { "\(prefix)/\(source)/\(label)" }

    /// Whether `name` can be one topic level as written: not empty, no `/`, no wildcard, no NUL.
    public static func isValidLevel(_ name: String) -> Bool {
        !name.isEmpty && !name.contains(where: { $0 == "/" || $0 == "+" || $0 == "#" || $0 == "\0" })
    }

    /// Whether `prefix` is a usable topic prefix: levels separated by `/`, no wildcards, not starting with `$`.
    public static func isValidPrefix(_ prefix: String) -> Bool {
        !prefix.hasPrefix("$") && !prefix.hasPrefix("/") && !prefix.hasSuffix("/")
            && prefix.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { isValidLevel(String($0)) }
    }
}

/// JSON text for payloads the MQTT module writes itself (the socket's records arrive already encoded).
enum PayloadJSON {
    static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// RFC 3339 UTC with milliseconds, as the socket's records write time.
    static func time(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
