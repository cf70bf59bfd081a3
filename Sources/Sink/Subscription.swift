import Foundation

/// What a subscriber asked to receive with `{"subscribe": {"types": [...], "sources": [...]}}` (docs/SCHEMA.md).
/// A list left out means all of them; a record without a `source` (e.g. `reload`) passes any `sources`.
public struct Subscription: Sendable, Equatable {
    /// The record types a subscriber may choose; `hello` always comes first, and `lag`, `error` and `subscribed`
    /// are this subscriber's own.
    public static let types = ["detections", "object_start", "object_end", "presence", "heartbeat", "source_up", "source_down",
                               "reload"]
    /// The longest request line read; a longer one is refused.
    static let maxRequestBytes = 64 * 1024
    /// Invalid requests answered per connection; a client that sends more is not listening, and gets no more.
    static let maxErrors = 10

    public var types: [String]?
    public var sources: [String]?

    public init(types: [String]? = nil, sources: [String]? = nil) {
        self.types = types
        self.sources = sources
    }

    public func accepts(type: String, source: String?) -> Bool {
        if let types, !types.contains(type) { return false }
        if let sources, let source, !sources.contains(source) { return false }
        return true
    }

    /// Reads one request line, or says what is wrong with it.
    public static func parse(_ line: some Collection<UInt8>) -> Result<Subscription, SubscriptionError> {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            return .failure(SubscriptionError("not a JSON object; send e.g. {\"subscribe\": {\"types\": [\"object_start\"]}}"))
        }
        guard object.count == 1, let request = object["subscribe"] else {
            return .failure(SubscriptionError("unknown request \(object.keys.sorted()); the one request is \"subscribe\""))
        }
        guard let fields = request as? [String: Any] else {
            return .failure(SubscriptionError("\"subscribe\" must be an object with \"types\" and/or \"sources\""))
        }
        if let unknown = fields.keys.sorted().first(where: { $0 != "types" && $0 != "sources" }) {
            return .failure(SubscriptionError("unknown key \"\(unknown)\" in \"subscribe\"; known keys: types, sources"))
        }
        var subscription = Subscription()
        for key in ["types", "sources"] {
            guard let value = fields[key], !(value is NSNull) else { continue }
            guard let names = value as? [String] else {
                return .failure(SubscriptionError("\"\(key)\" must be a list of strings"))
            }
            if key == "types" {
                if let unknown = names.first(where: { !types.contains($0) }) {
                    return .failure(SubscriptionError("unknown type \"\(unknown)\"; types: \(types.joined(separator: ", "))"))
                }
                subscription.types = names
            } else {
                subscription.sources = names
            }
        }
        return .success(subscription)
    }

    /// This subscription as the request line a client sends.
    public func requestLine() -> String {
        struct Request: Encodable {
            struct Fields: Encodable {
                var types: [String]?
                var sources: [String]?
            }
            var subscribe: Fields
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding strings cannot fail.
        let data = (try? encoder.encode(Request(subscribe: .init(types: types, sources: sources)))) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// The `type` and `source` of a record line.
    static func header(of line: String) -> (type: String, source: String?) {
        let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        return (object?["type"] as? String ?? "", object?["source"] as? String)
    }
}

/// Why a subscription request was refused (the `detail` of the `error` record it gets).
public struct SubscriptionError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
