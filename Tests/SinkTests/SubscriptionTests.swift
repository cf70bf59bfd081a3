import Foundation
import Sink
import XCTest

/// Subscribers that choose what they receive, on a real socket server.
final class SubscriptionTests: XCTestCase {
    private var directory = ""
    private var server: SocketServer?

    override func setUpWithError() throws {
        var template = Array("/tmp/sightline-subscribe-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SinkError("mkdtemp failed") }
        directory = String(cString: made)
    }

    override func tearDown() {
        server?.close(flushTimeout: .zero)
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func record(_ type: String, _ source: String?, _ n: Int) -> String {
        #"{"type":"\#(type)""# + (source.map { #","source":"\#($0)""# } ?? "") + #","n":\#(n)}"# + "\n"
    }

    private func object(_ line: String?) -> [String: Any] {
        line.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
    }

    func testASubscriberGetsOnlyWhatItChoseAndOneThatAsksNothingGetsEverything() throws {
        let path = directory + "/s.sock"
        let server = try SocketServer(path: path, hello: { #"{"type":"hello"}"# + "\n" })
        self.server = server
        let everything = try Client(path: path), chooser = try Client(path: path)
        XCTAssertEqual(object(everything.readLine())["type"] as? String, "hello")
        XCTAssertEqual(object(chooser.readLine())["type"] as? String, "hello")
        chooser.send(#"{"subscribe": {"types": ["object_start", "object_end", "reload"], "sources": ["door"]}}"# + "\n")
        let subscribed = object(chooser.readLine())
        XCTAssertEqual(subscribed["type"] as? String, "subscribed")
        XCTAssertEqual(subscribed["types"] as? [String], ["object_start", "object_end", "reload"])
        XCTAssertEqual(subscribed["sources"] as? [String], ["door"])

        let sent = [("detections", "door"), ("object_start", "door"), ("object_start", "yard"), ("presence", "door"),
                    ("reload", nil), ("object_end", "door"), ("source_down", "door"), ("object_end", "yard")]
        for (n, (type, source)) in sent.enumerated() { server.broadcast(Self.record(type, source, n)) }
        var all: [Int] = []
        while all.count < sent.count, let line = everything.readLine() { all.append(object(line)["n"] as? Int ?? -1) }
        XCTAssertEqual(all, Array(0..<sent.count), "no request: everything, as before")
        var chosen: [Int] = []
        while chosen.count < 3, let line = chooser.readLine() { chosen.append(object(line)["n"] as? Int ?? -1) }
        XCTAssertEqual(chosen, [1, 4, 5], "door's starts and ends, and the reload (which has no source)")
    }

    func testAnInvalidRequestGetsAnErrorAndTheConnectionStaysUsable() throws {
        let path = directory + "/s.sock"
        let server = try SocketServer(path: path, hello: { #"{"type":"hello"}"# + "\n" })
        self.server = server
        let client = try Client(path: path)
        XCTAssertEqual(object(client.readLine())["type"] as? String, "hello")
        let invalid = ["not json", #"{"subscribe": {"types": ["object_begin"]}}"#, #"{"subscribe": {"types": "presence"}}"#,
                       #"{"subscribe": {"labels": ["person"]}}"#, #"{"unsubscribe": {}}"#, "[1, 2]"]
        for request in invalid {
            client.send(request + "\n")
            let error = object(client.readLine())
            XCTAssertEqual(error["type"] as? String, "error", request)
            XCTAssertEqual(error["reason"] as? String, "invalid request", request)
            XCTAssertFalse((error["detail"] as? String ?? "").isEmpty, request)
        }
        server.broadcast(Self.record("detections", "door", 0))
        XCTAssertEqual(object(client.readLine())["n"] as? Int, 0, "still subscribed to everything")
        // A request split across writes, and blank lines, are fine.
        client.send("\n  \n{\"subscribe\": {\"types\": ")
        usleep(50_000)
        client.send("[\"presence\"]}}\n")
        XCTAssertEqual(object(client.readLine())["type"] as? String, "subscribed")
        server.broadcast(Self.record("detections", "door", 1))
        server.broadcast(Self.record("presence", "door", 2))
        XCTAssertEqual(object(client.readLine())["n"] as? Int, 2)
        XCTAssertEqual(server.subscriberCount, 1)
    }

    func testRequestLinesRoundTrip() {
        let subscription = Subscription(types: ["presence"], sources: ["door", "yard \"2\""])
        XCTAssertEqual(try? Subscription.parse(Array(subscription.requestLine().utf8)).get(), subscription)
        XCTAssertEqual(try? Subscription.parse(Array(#"{"subscribe": {}}"#.utf8)).get(), Subscription())
    }
}
