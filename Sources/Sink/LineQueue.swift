/// A bounded FIFO of lines that, when full, gives up its oldest line to take a new one.
struct LineQueue {
    private var slots: [String] = []
    private var head = 0
    private(set) var count = 0
    let limit: Int

    init(limit: Int) { self.limit = max(1, limit) }


    /// Appends `line`; returns true if the oldest line was dropped to make room.
    @inline(__always)
    mutating func push(_ line: String) -> Bool {
        var droppedOldest = false
        if count == limit {
            slots[head] = ""
            head = head + 1 == slots.count ? 0 : head + 1
            count -= 1
            droppedOldest = true
        } else if count == slots.count {
            grow()
        }
        var tail = head + count
        if tail >= slots.count { tail -= slots.count }
        slots[tail] = line
        count += 1
        return droppedOldest
    }

    mutating func pop() -> String? {
        guard count > 0 else { return nil }
        let line = slots[head]
        slots[head] = ""
        head = head + 1 == slots.count ? 0 : head + 1
        count -= 1
        return line
    }

    /// Doubles the storage (up to `limit`), keeping the lines in order from index 0.
    private mutating func grow() {
        let capacity = min(limit, max(16, slots.count * 2))
        var grown: [String] = []
        grown.reserveCapacity(capacity)
        for i in 0..<count {
            var index = head + i
            if index >= slots.count { index -= slots.count }
            grown.append(slots[index])
        }
        grown.append(contentsOf: repeatElement("", count: capacity - count))
        slots = grown
        head = 0
    }
}
