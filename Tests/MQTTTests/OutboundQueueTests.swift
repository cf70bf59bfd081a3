@testable import MQTT
import XCTest

final class OutboundQueueTests: XCTestCase {
    private func event(_ n: Int) -> Outbound { Outbound(topic: "p/s/events", payload: String(n), qos: 1, retain: false) }

    func testDropsTheOldestBeyondTheLimitAndCountsThem() {
        var queue = OutboundQueue(limit: 3)
        for n in 1...5 { queue.append(event(n)) }
        XCTAssertEqual(queue.count, 3)
        XCTAssertEqual(queue.takeDropped(), 2)
        XCTAssertEqual(queue.takeDropped(), 0, "reported once")
        XCTAssertEqual(queue.droppedTotal, 2)
        XCTAssertEqual([queue.popFirst(), queue.popFirst(), queue.popFirst(), queue.popFirst()].map { $0?.payload }, ["3", "4", "5", nil])
    }

    func testDroppedRetainedMessagesAreNotCountedAsLost() {
        var queue = OutboundQueue(limit: 1)
        queue.append(Outbound(topic: "p/s/person", payload: "1", qos: 1, retain: true, version: 1))
        queue.append(event(1))
        XCTAssertEqual(queue.droppedTotal, 0)
    }

    func testPrependPutsUndeliveredMessagesFirstWithinTheBound() {
        var queue = OutboundQueue(limit: 3)
        for n in 3...4 { queue.append(event(n)) }
        queue.prepend([event(1), event(2)])
        XCTAssertEqual(queue.droppedTotal, 1)
        var order: [String] = []
        while let m = queue.popFirst() { order.append(m.payload) }
        XCTAssertEqual(order, ["2", "3", "4"])
    }

    func testResizeKeepsTheNewest() {
        var queue = OutboundQueue(limit: 4)
        for n in 1...4 { queue.append(event(n)) }
        queue.resize(to: 2)
        XCTAssertEqual(queue.droppedTotal, 2)
        XCTAssertEqual([queue.popFirst(), queue.popFirst()].map { $0?.payload }, ["3", "4"])
    }

    func testRetainedStateKeepsTheNewestInFirstSetOrder() {
        var state = RetainedState()
        let first = state.set("a", "1")
        _ = state.set("b", "x")
        let second = state.set("a", "2")
        XCTAssertLessThan(first, second)
        XCTAssertEqual(state.all.map(\.topic), ["a", "b"])
        XCTAssertEqual(state.all.map(\.payload), ["2", "x"])
        XCTAssertEqual(state.all.first?.version, second)
    }

    func testTopicLevelsAndPrefixes() {
        XCTAssertTrue(Topics.isValidPrefix("site/hall"))
        for bad in ["", "/a", "a/", "a//b", "a/+", "#", "$SYS"] { XCTAssertFalse(Topics.isValidPrefix(bad), bad) }
        XCTAssertFalse(Topics.isValidLevel("front/door"))
        XCTAssertEqual(HomeAssistantDiscovery.identifier("cam host.1"), "cam_host_1")
    }

    func testDiscoveryRemovalsAreEmptyPayloadsOnTheSameTopics() {
        let discovery = HomeAssistantDiscovery(settings: MQTTSettings(host: "h", clientID: "node"), version: "1")
        let configs = discovery.configs(sources: ["door", "yard"], labels: ["person", "car"])
        XCTAssertEqual(configs.count, 2 * (1 + 2 * 2))
        XCTAssertEqual(Set(configs.map(\.topic)).count, configs.count, "one topic per entity")
        let removals = discovery.removals(sources: ["door", "yard"], labels: ["person", "car"])
        XCTAssertEqual(removals.map(\.topic), configs.map(\.topic))
        XCTAssertTrue(removals.allSatisfy { $0.payload.isEmpty })
    }
}
