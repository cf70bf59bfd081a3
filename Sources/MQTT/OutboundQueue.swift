/// One message waiting for the broker.
struct Outbound: Sendable {
    var topic: String
    var payload: String
    var qos: Int32
    /// Retained messages also live in `RetainedState`, which republishes the newest on every connect, so
    /// dropping an older one loses nothing.
    var retain: Bool
    /// For a retained message: its place in `RetainedState`'s order; one already superseded there is skipped.
    var version = 0
}

/// What waits while the broker is away or slow: at most `limit` messages, the oldest dropped first.
struct OutboundQueue {
    private var ring: [Outbound?]
    private var head = 0
    private(set) var count = 0
    /// Non-retained messages dropped since the last `takeDropped()`, and in all.
    private(set) var dropped = 0
    private(set) var droppedTotal = 0

    var limit: Int { ring.count }

    init(limit: Int) { ring = Array(repeating: nil, count: max(1, limit)) }

    /// Appends, dropping the oldest if full.
    mutating func append(_ message: Outbound) {
        if count == ring.count {
            if let oldest = popFirst(), !oldest.retain {
                dropped += 1
                droppedTotal += 1
            }
        }
        ring[(head + count) % ring.count] = message
        count += 1
    }

    mutating func popFirst() -> Outbound? {
        guard count > 0 else { return nil }
        let message = ring[head]
        ring[head] = nil
        head = (head + 1) % ring.count
        count -= 1
        return message
    }

    /// Puts `messages` (oldest first) back before everything queued, as the oldest; the bound still applies.
    mutating func prepend(_ messages: [Outbound]) {
        var rebuilt = OutboundQueue(limit: limit)
        rebuilt.dropped = dropped
        rebuilt.droppedTotal = droppedTotal
        for message in messages { rebuilt.append(message) }
        while let message = popFirst() { rebuilt.append(message) }
        self = rebuilt
    }

    /// The drops not reported yet, now reported.
    mutating func takeDropped() -> Int {
        defer { dropped = 0 }
        return dropped
    }

    /// The same messages (the newest `newLimit` of them, the rest counted as dropped) under a new limit.
    mutating func resize(to newLimit: Int) {
        var resized = OutboundQueue(limit: newLimit)
        resized.dropped = dropped
        resized.droppedTotal = droppedTotal
        while let message = popFirst() { resized.append(message) }
        self = resized
    }
}

/// The newest payload of every retained topic, republished in first-set order whenever a connection starts.
struct RetainedState {
    private(set) var order: [String] = []
    private var values: [String: (payload: String, version: Int)] = [:]
    private var nextVersion = 0

    /// Records `payload` as the topic's newest value and returns its version.
    mutating func set(_ topic: String, _ payload: String) -> Int {
        nextVersion += 1
        if values[topic] == nil { order.append(topic) }
        values[topic] = (payload, nextVersion)
        return nextVersion
    }

    func value(_ topic: String) -> String? { values[topic]?.payload }

    /// Forgets every topic but keeps counting versions, so messages still queued from before stay older than any new value.
    mutating func removeAll() {
        order.removeAll()
        values.removeAll()
    }

    var all: [(topic: String, payload: String, version: Int)] {
        order.compactMap { topic in values[topic].map { (topic, $0.payload, $0.version) } }
    }
}
