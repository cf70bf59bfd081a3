import Foundation
import TestSupport
import XCTest

/// `sightline run` with an `mqtt:` section against a real Mosquitto broker: the Last Will, the multi-host shape,
/// the password from the environment, and a reload that moves the daemon to another prefix without restarting sources.
final class MQTTDaemonTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    var dir: URL!

    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A config with one realtime vtest.avi source named `source` and `mqtt` as the mqtt section's body.
    func writeConfig(_ name: String, source: String = "walk", realtime: Bool = true, mqtt: String) throws -> (config: String, socket: String) {
        let config = dir.appendingPathComponent("\(name).yaml").path, socket = dir.appendingPathComponent("\(name).sock").path
        try """
        workers: 1
        socket: { path: \(socket), mode: "0600" }
        sources:
          - name: \(source)
            input: \(TestPaths.media("vtest.avi"))
            realtime: \(realtime)
        mqtt:
        \(mqtt)
        """.write(toFile: config, atomically: true, encoding: .utf8)
        return (config, socket)
    }

    func testLastWillOnSIGKILLWithThePasswordFromTheEnvironment() throws {
        let passwords = dir.appendingPathComponent("passwords").path
        let made = try runProcess("/usr/bin/mosquitto_passwd", ["-b", "-c", passwords, "cam", "from-env"])
        XCTAssertEqual(made.status, 0, made.stderr)
        let broker = try MosquittoBroker(extra: ["password_file \(passwords)"])
        let subscriber = try MQTTSubscriber(port: broker.port, topics: ["sightline/#", "homeassistant/#"],
                                            arguments: ["-u", "cam", "-P", "from-env"])
        defer { subscriber.stop() }
        let (config, _) = try writeConfig("killed", mqtt: """
          host: 127.0.0.1
          port: \(broker.port)
          client_id: killed-host
          username: cam
          password: ${MQTT_PASSWORD}
          stats_interval: 1
        """)
        let daemon = try BackgroundProcess(binary, ["run", "--config", config], environment: ["MQTT_PASSWORD": "from-env"])
        XCTAssertTrue(subscriber.waitUntil { messages in
            messages.contains { $0.topic == "sightline/available" && $0.payload == "online" }
                && messages.contains { $0.topic == "sightline/walk/state" && $0.json?["state"] as? String == "up" }
                && messages.contains { (($0.json?["sources"] as? [String: Any])?["walk"] as? [String: Any])?["records"] as? Int ?? 0 > 0 }
        }, "\(subscriber.messages)\n\(daemon.stderr)")
        XCTAssertTrue(subscriber.messages.contains { $0.topic == "homeassistant/binary_sensor/killed-host/walk_person_occupancy/config" })
        let before = subscriber.messages.count
        daemon.signal(SIGKILL)
        _ = daemon.wait(timeout: 120)
        // No goodbye was sent: only the broker's Last Will can say so.
        XCTAssertTrue(subscriber.waitUntil { $0.dropFirst(before).contains { $0.topic == "sightline/available" && $0.payload == "offline" } },
                      "\(subscriber.messages.dropFirst(before))")
        XCTAssertFalse(subscriber.messages.dropFirst(before).contains { $0.json?["reason"] as? String == "stopped" },
                       "a killed daemon cannot have said goodbye")
    }

    /// Two daemons (two hosts, in production) with their own client ids and prefixes into one broker; one subscriber
    /// sees both, and each daemon's SIGTERM publishes its own `offline`.
    func testTwoDaemonsTwoPrefixesOneBroker() throws {
        let broker = try MosquittoBroker()
        let subscriber = try MQTTSubscriber(port: broker.port, topics: ["+/available", "+/+/state"])
        defer { subscriber.stop() }
        let daemons = try [("hall", "entrance"), ("yard", "gate")].map { host, source in
            let (config, _) = try writeConfig(host, source: source, mqtt: """
              host: 127.0.0.1
              port: \(broker.port)
              client_id: \(host)-host
              topic_prefix: \(host)
            """)
            return try BackgroundProcess(binary, ["run", "--config", config])
        }
        XCTAssertTrue(subscriber.waitUntil { messages in
            ["hall/entrance/state", "yard/gate/state"].allSatisfy { topic in
                messages.contains { $0.topic == topic && $0.json?["state"] as? String == "up" }
            } && ["hall/available", "yard/available"].allSatisfy { topic in messages.contains { $0.topic == topic && $0.payload == "online" } }
        }, "\(subscriber.messages)\n\(daemons.map(\.stderr))")
        for daemon in daemons {
            daemon.signal(SIGTERM)
            XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
        }
        // The broker has the goodbyes before each daemon exits; they still have to reach the subscriber.
        for prefix in ["hall", "yard"] {
            XCTAssertTrue(subscriber.waitUntil { $0.last { $0.topic == "\(prefix)/available" }?.payload == "offline" },
                          "\(prefix): \(subscriber.messages(on: "\(prefix)/available"))")
        }
        XCTAssertTrue(subscriber.waitUntil { $0.last { $0.topic == "hall/entrance/state" }?.json?["reason"] as? String == "stopped" },
                      "\(subscriber.messages(on: "hall/entrance/state"))")
    }

    /// SIGHUP with a new topic prefix: the old prefix goes offline, the new one online, and the source keeps running.
    func testReloadMovesToANewPrefixWithoutRestartingSources() throws {
        let broker = try MosquittoBroker()
        let subscriber = try MQTTSubscriber(port: broker.port, topics: ["+/available", "+/walk/state"])
        defer { subscriber.stop() }
        func mqtt(_ prefix: String) -> String {
            """
              host: 127.0.0.1
              port: \(broker.port)
              topic_prefix: \(prefix)
            """
        }
        let (config, socket) = try writeConfig("reloaded", mqtt: mqtt("before"))
        let daemon = try BackgroundProcess(binary, ["run", "--config", config])
        XCTAssertTrue(subscriber.waitUntil { $0.contains { $0.topic == "before/walk/state" && $0.json?["state"] as? String == "up" } },
                      "\(subscriber.messages)\n\(daemon.stderr)")
        let records = try LineSubscriber(path: socket)
        // The hello comes once the daemon has taken the subscriber in: from then on it gets every record.
        XCTAssertEqual(records.next(timeout: 60)?["type"] as? String, "hello")
        _ = try writeConfig("reloaded", mqtt: mqtt("after"))
        daemon.signal(SIGHUP)
        let reload = records.until(timeout: 60) { $0["type"] as? String == "reload" }
        XCTAssertEqual(reload.match?["changed"] as? [String], ["mqtt"], "\(reload)")
        XCTAssertEqual((reload.match?["restarted"] as? [Any])?.count, 0)
        XCTAssertTrue(subscriber.waitUntil { messages in
            messages.contains { $0.topic == "after/walk/state" && $0.json?["state"] as? String == "up" }
                && messages.last { $0.topic == "before/available" }?.payload == "offline"
                && messages.last { $0.topic == "after/available" }?.payload == "online"
        }, "\(subscriber.messages)\n\(daemon.stderr)")
        // The source never went down: its records kept coming on the socket.
        let more = records.until(timeout: 120) { $0["type"] as? String == "source_down" || $0["type"] as? String == "detections" }
        XCTAssertEqual(more.match?["type"] as? String, "detections", "\(more.seen)")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
    }

    /// Real video through the tracker: every `object_start` published on `<prefix>/<source>/events` gets its
    /// `object_end`, the same JSON the socket sends, and the retained person count returns to 0 when the file ends.
    func testEventsAndCountsFromARealVideo() throws {
        let broker = try MosquittoBroker()
        let subscriber = try MQTTSubscriber(port: broker.port, topics: ["sightline/walk/#"])
        defer { subscriber.stop() }
        XCTAssertTrue(subscriber.waitUntilSubscribed(port: broker.port, probe: "sightline/walk/probe"))
        let (config, _) = try writeConfig("events", realtime: false, mqtt: """
          host: 127.0.0.1
          port: \(broker.port)
          queue_limit: 100000
        """)
        let daemon = try BackgroundProcess(binary, ["run", "--config", config])
        // The file ends: its source goes down (after its tracks ended).
        XCTAssertTrue(subscriber.waitUntil(timeout: 600) { messages in
            messages.contains { $0.topic == "sightline/walk/state" && $0.json?["reason"] as? String == "end of file" }
        }, "\(subscriber.messages.suffix(20))\n\(daemon.stderr)")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 60), 0, daemon.stderr)
        let events = subscriber.messages(on: "sightline/walk/events").compactMap(\.json)
        let starts = events.filter { $0["type"] as? String == "object_start" }.compactMap { $0["track_id"] as? Int }
        let ends = events.filter { $0["type"] as? String == "object_end" }.compactMap { $0["track_id"] as? Int }
        XCTAssertGreaterThan(starts.count, 5, "vtest.avi has people walking through")
        XCTAssertEqual(starts.count, events.count - ends.count, "only object_start and object_end on the events topic")
        XCTAssertEqual(Set(starts).count, starts.count, "one start per track")
        XCTAssertEqual(ends.sorted(), starts.sorted(), "every start has exactly one end")
        XCTAssertTrue(events.allSatisfy { $0["source"] as? String == "walk" })
        let counts = subscriber.messages(on: "sightline/walk/person").compactMap { Int($0.payload) }
        XCTAssertGreaterThan(counts.max() ?? 0, 0, "\(counts)")
        XCTAssertEqual(counts.last, 0, "\(counts)")
    }
}
