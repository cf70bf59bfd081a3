import Foundation
import TestSupport
import XCTest

/// The daemon's HTTP server (docs/HTTP.md) against the real daemon on a real network stream, with curl as the
/// client (and plain sockets for the 100 concurrent streams).
final class HTTPServerTests: XCTestCase {
    var daemon: HTTPDaemonHarness!
    override func setUpWithError() throws { daemon = try HTTPDaemonHarness() }
    override func tearDownWithError() throws { daemon = nil }

    func get(_ path: String, maxTime: Double = 20) throws -> HTTPDaemonHarness.Reply { try daemon.get(path, maxTime: maxTime) }
    func waitFor(_ path: String, status: Int, timeout: TimeInterval) throws -> HTTPDaemonHarness.Reply {
        try daemon.waitFor(path, status: status, timeout: timeout)
    }

    /// A JPEG decoded by the ffmpeg CLI: its size and packed RGB24 pixels.
    func decode(_ jpeg: Data) throws -> (width: Int, height: Int, rgb: [UInt8]) {
        let file = daemon.dir.appendingPathComponent("picture-\(UUID().uuidString).jpg"), raw = daemon.dir.appendingPathComponent("picture.rgb")
        try jpeg.write(to: file)
        let probe = try runProcess("/usr/bin/env", ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height,codec_name",
                                                    "-of", "csv=p=0", file.path])
        let fields = probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",")
        guard fields.count == 3, fields[0] == "mjpeg", let width = Int(fields[1]), let height = Int(fields[2]) else {
            throw HTTPDaemonHarness.Failure(description: "not a JPEG: ffprobe says \(probe.stdout) \(probe.stderr)")
        }
        let convert = try runProcess("/usr/bin/env", ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", file.path, "-f", "rawvideo",
                                                      "-pix_fmt", "rgb24", raw.path])
        guard convert.status == 0 else { throw HTTPDaemonHarness.Failure(description: "ffmpeg could not decode the JPEG: \(convert.stderr)") }
        return (width, height, try [UInt8](Data(contentsOf: raw)))
    }

    /// Reads records until the one of `frame` (records come in frame order); nil if it went by or never came.
    func record(frame: Int, from subscriber: LineSubscriber, seen: inout [[String: Any]]) -> [String: Any]? {
        if let earlier = seen.first(where: { $0["type"] as? String == "detections" && $0["frame"] as? Int == frame }) { return earlier }
        let found = subscriber.until(timeout: 120) { $0["type"] as? String == "detections" && ($0["frame"] as? Int ?? -1) >= frame }
        seen += found.seen
        if let match = found.match { seen.append(match) }
        return found.match.flatMap { $0["frame"] as? Int == frame ? $0 : nil }
    }

    func testPreviewMetricsAndHealthOfALiveStream() throws {
        let (stream, url) = try daemon.serveStream()
        let process = try daemon.start(input: url)
        let subscriber = try LineSubscriber(path: daemon.socketPath)
        var seen: [[String: Any]] = []
        let first = subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }
        seen += first.seen
        let firstRecord = try XCTUnwrap(first.match, "detections from the stream: \(process.stderr)")
        seen.append(firstRecord)
        XCTAssertEqual(firstRecord["seq"] as? Int, 0, "the subscriber was there from the stream's first record")

        XCTAssertEqual(try waitFor("/healthz", status: 200, timeout: 120).status, 200, "healthy while frames are detected")
        let page = try get("/")
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.headers["content-type"]?.hasPrefix("text/html") ?? false)
        XCTAssertTrue(page.text.contains("<title>Sightline</title>") && page.text.contains("/api/sources"))
        let api = try get("/api/sources")
        XCTAssertEqual(api.status, 200)
        let sources = try XCTUnwrap(JSONSerialization.jsonObject(with: api.body) as? [[String: Any]], api.text)
        XCTAssertEqual(sources.first?["name"] as? String, "net")
        XCTAssertEqual(sources.first?["state"] as? String, "up")

        // latest.jpg: a JPEG of the stream's size, its boxes drawn where the record of that frame puts them.
        var checkedBoxes = false
        for _ in 0..<15 where !checkedBoxes {
            let latest = try get("/sources/net/latest.jpg")
            XCTAssertEqual(latest.status, 200, latest.text)
            XCTAssertEqual(latest.headers["content-type"], "image/jpeg")
            let frame = try XCTUnwrap(latest.headers["x-sightline-frame"].flatMap { Int($0) }, "\(latest.headers)")
            let picture = try decode(latest.body)
            XCTAssertEqual(picture.width, 768)
            XCTAssertEqual(picture.height, 576)
            guard let record = record(frame: frame, from: subscriber, seen: &seen) else {
                XCTFail("no record of frame \(frame), whose picture latest.jpg served")
                break
            }
            // Each box in its colour: its track's (`Annotator.palette`), or its class's while it has no track id yet.
            // (Not red for every person: only track 1, 9, ... and tentative ones are red.)
            for detection in (record["detections"] as? [[String: Any]]) ?? [] where !checkedBoxes {
                guard let box = detection["box"] as? [String: Double],
                      let drawn = boxDrawn(box, paletteIndex: detection["track_id"] as? Int ?? detection["class_id"] as? Int ?? 1, on: picture) else { continue }
                XCTAssertLessThan(drawn.edge, 70, "frame \(frame): the box's edges at the record's box \(box) in its colour: \(detection)")
                XCTAssertGreaterThan(drawn.inside, drawn.edge + 30, "frame \(frame): edges \(drawn.edge), inside \(drawn.inside)")
                checkedBoxes = true
            }
        }
        XCTAssertTrue(checkedBoxes, "a latest.jpg with a detection came within 15 tries")

        // stream.mjpeg: pictures at no more than preview_fps (5) although the stream has 10 fps.
        // Pictures come as fast as frames are detected: a loaded machine gets a longer look, not a failure.
        var window = 4.0, parts = 0
        var mjpeg = try get("/sources/net/stream.mjpeg", maxTime: window)
        while true {
            parts = mjpeg.text.components(separatedBy: "--frame\r\nContent-Type: image/jpeg").count - 1
            guard parts < 2, window < 64 else { break }
            window *= 4
            mjpeg = try get("/sources/net/stream.mjpeg", maxTime: window)
        }
        XCTAssertTrue(mjpeg.headers["content-type"]?.hasPrefix("multipart/x-mixed-replace") ?? false, "\(mjpeg.headers)")
        XCTAssertGreaterThanOrEqual(parts, 2, "pictures keep coming")
        XCTAssertLessThanOrEqual(parts, Int(window * 5) + 2, "capped at preview_fps")

        // Stop the camera: /healthz turns 503 and says why; the counters then agree with what the subscriber got.
        stream.signal(SIGSTOP)
        let unhealthy = try waitFor("/healthz", status: 503, timeout: 120)
        XCTAssertEqual(unhealthy.status, 503)
        XCTAssertTrue(unhealthy.text.contains("net: no frame detected for"), unhealthy.text)
        seen += subscriber.until(timeout: 2) { _ in false }.seen
        let records = seen.filter { $0["type"] as? String == "detections" }
        let seqs = records.compactMap { $0["seq"] as? Int }
        XCTAssertEqual(seqs, Array(0..<seqs.count), "every record from the first, in order")
        let metrics = try get("/metrics")
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(metrics.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") ?? false)
        let samples = try PrometheusText.parse(metrics.text)
        XCTAssertEqual(samples["sightline_frames_detected_total{source=\"net\"}"], Double(records.count))
        let people = records.reduce(0) { $0 + (($1["detections"] as? [Any])?.count ?? 0) }
        XCTAssertEqual(samples["sightline_detections_total{label=\"person\",source=\"net\"}"] ?? 0, Double(people))
        let dropped = records.reduce(0) { $0 + ($1["dropped"] as? Int ?? 0) }
        XCTAssertEqual(samples["sightline_frames_dropped_total{reason=\"queue_full\",source=\"net\"}"], Double(dropped))
        XCTAssertEqual(samples["sightline_inference_seconds_count{source=\"net\"}"], Double(records.count))
        XCTAssertEqual(samples["sightline_capture_to_emit_seconds_count{source=\"net\"}"], Double(records.count))
        XCTAssertEqual(samples["sightline_source_up{source=\"net\"}"], 1, "stalled, not yet timed out")
        XCTAssertEqual(samples["sightline_subscribers"], 1)
        XCTAssertGreaterThan(samples["process_cpu_seconds_total"] ?? 0, 0)
        XCTAssertGreaterThan(samples["process_resident_memory_bytes"] ?? 0, 10_000_000)

        // /api/events: the latest object_start/object_end records, as the subscriber received them.
        let events = try get("/api/events?source=net&limit=5")
        XCTAssertEqual(events.status, 200, events.text)
        let recent = try XCTUnwrap(JSONSerialization.jsonObject(with: events.body) as? [[String: Any]], events.text)
        let received = seen.filter { ["object_start", "object_end"].contains($0["type"] as? String ?? "") }
        XCTAssertFalse(received.isEmpty, "people walk in and out of vtest.avi: the tracker reports them")
        XCTAssertEqual(recent.map { "\($0["type"] ?? "") \($0["track_id"] ?? "")" },
                       received.suffix(5).map { "\($0["type"] ?? "") \($0["track_id"] ?? "")" })
        XCTAssertEqual(try get("/api/events?source=nope").status, 404)

        // And back.
        stream.signal(SIGCONT)
        XCTAssertEqual(try waitFor("/healthz", status: 200, timeout: 120).status, 200, "healthy again once frames flow")
        process.signal(SIGTERM)
        XCTAssertEqual(process.wait(timeout: 120), 0, process.stderr)
    }

    /// The track's detections the subscriber received (those carrying its `track_id`): frame, score, box.
    func detections(of trackID: Int, in records: [[String: Any]]) -> [(frame: Int, score: Double, box: [String: Double])] {
        records.filter { $0["type"] as? String == "detections" }.flatMap { record in
            ((record["detections"] as? [[String: Any]]) ?? []).compactMap { detection in
                guard detection["track_id"] as? Int == trackID, let frame = record["frame"] as? Int, let score = detection["score"] as? Double,
                      let box = detection["box"] as? [String: Double] else { return nil }
                return (frame, score, box)
            }
        }
    }

    /// Whether `picture` has a box outline in `Annotator.palette[paletteIndex & 7]` (a track's colour: its id; a
    /// detection without one: its class id) at `box`: the box's edge columns have that colour, columns a few pixels
    /// inside do not. Nil if the box is too small to tell.
    func boxDrawn(_ box: [String: Double], paletteIndex: Int, on picture: (width: Int, height: Int, rgb: [UInt8])) -> (edge: Double, inside: Double)? {
        let palette: [(Int, Int, Int)] = [(0, 255, 0), (255, 48, 48), (48, 128, 255), (255, 220, 0), (255, 0, 255), (0, 230, 230), (255, 140, 0), (160, 80, 255)]
        let color = palette[paletteIndex & 7]
        guard let xmin = box["xmin"], let xmax = box["xmax"], let ymin = box["ymin"], let ymax = box["ymax"] else { return nil }
        let (w, h) = (Double(picture.width), Double(picture.height))
        let (x0, x1) = (max(0, Int((xmin * w).rounded())), min(picture.width, Int((xmax * w).rounded())) - 1)
        let (y0, y1) = (max(0, Int((ymin * h).rounded())), min(picture.height, Int((ymax * h).rounded())) - 1)
        guard x1 - x0 > 16, y1 - y0 > 16, picture.rgb.count >= picture.width * picture.height * 3 else { return nil }
        // Mean distance from the colour down the middle half of a column.
        func distance(column x: Int) -> Double {
            let rows = (y0 + (y1 - y0) / 4)...(y1 - (y1 - y0) / 4)
            let sum = rows.reduce(0) { sum, y in
                let i = (y * picture.width + x) * 3
                return sum + abs(Int(picture.rgb[i]) - color.0) + abs(Int(picture.rgb[i + 1]) - color.1) + abs(Int(picture.rgb[i + 2]) - color.2)
            }
            return Double(sum) / Double(rows.count * 3)
        }
        let edge = max(min(distance(column: x0), distance(column: x0 + 1)), min(distance(column: x1), distance(column: x1 - 1)))
        let inside = min(distance(column: x0 + 6), distance(column: x1 - 6))
        return (edge, inside)
    }

    func testEventSnapshotsShowTheBestDetectionAndOnlyTheLastOnesAreKept() throws {
        let (stream, url) = try daemon.serveStream()
        let kept = 12
        let process = try daemon.start(input: url, snapshots: kept)
        let subscriber = try LineSubscriber(path: daemon.socketPath)
        var seen: [[String: Any]] = []
        let started = subscriber.until(timeout: 60) { $0["type"] as? String == "object_start" }
        seen += started.seen
        let start = try XCTUnwrap(started.match, "an object_start: \(process.stderr)")
        seen.append(start)
        let trackID = try XCTUnwrap(start["track_id"] as? Int)
        let path = "/events/net-\(trackID)/snapshot.jpg"
        XCTAssertEqual(seen.first { $0["type"] as? String == "detections" }?["seq"] as? Int, 0, "the subscriber has every record")

        // As soon as the event started: a JPEG of the stream's size, the track's box drawn where its detection in that frame is.
        let open = try get(path)
        XCTAssertEqual(open.status, 200, open.text)
        XCTAssertEqual(open.headers["content-type"], "image/jpeg")
        let openFrame = try XCTUnwrap(open.headers["x-sightline-frame"].flatMap { Int($0) }, "\(open.headers)")
        let openPicture = try decode(open.body)
        XCTAssertEqual(openPicture.width, 768)
        XCTAssertEqual(openPicture.height, 576)
        if !seen.contains(where: { $0["type"] as? String == "detections" && ($0["frame"] as? Int ?? -1) >= openFrame }) {
            let found = subscriber.until(timeout: 20) { $0["type"] as? String == "detections" && ($0["frame"] as? Int ?? -1) >= openFrame }
            seen += found.seen
            if let match = found.match { seen.append(match) }
        }
        let openView = try XCTUnwrap(detections(of: trackID, in: seen).first { $0.frame == openFrame },
                                     "frame \(openFrame) of the snapshot has a detection of track \(trackID)")
        XCTAssertEqual(Double(open.headers["x-sightline-score"] ?? "") ?? -1, openView.score, accuracy: 1e-5)
        if let drawn = boxDrawn(openView.box, paletteIndex: trackID, on: openPicture) {
            XCTAssertLessThan(drawn.edge, 70, "the box's edges at \(openView.box) in the track's colour")
            XCTAssertGreaterThan(drawn.inside, drawn.edge + 30, "edges \(drawn.edge), inside \(drawn.inside)")
        }

        // The first event to end among the last few that started (so that it is still kept): once it has ended, its
        // snapshot is the frame of the best of the detections that carried its track id.
        var starts: [Int] = []
        var endedID: Int?
        func consider(_ record: [String: Any]) {
            guard endedID == nil, let id = record["track_id"] as? Int else { return }
            if record["type"] as? String == "object_start" {
                starts.append(id)
            } else if record["type"] as? String == "object_end", starts.suffix(kept / 2).contains(id) {
                endedID = id
            }
        }
        seen.forEach(consider)
        while endedID == nil {
            let next = subscriber.until(timeout: 120) { ["object_start", "object_end"].contains($0["type"] as? String ?? "") }
            seen += next.seen
            guard let record = next.match else { break }
            seen.append(record)
            consider(record)
        }
        let endedTrack = try XCTUnwrap(endedID, "an event that started and ended: \(starts)")
        let endedPath = "/events/net-\(endedTrack)/snapshot.jpg"
        let best = try XCTUnwrap(detections(of: endedTrack, in: seen).max { $0.score < $1.score }, "detections of track \(endedTrack)")
        let final = try waitFor(endedPath, status: 200, timeout: 20)
        XCTAssertEqual(final.status, 200, final.text)
        XCTAssertEqual(final.headers["x-sightline-final"], "true", "\(final.headers)")
        XCTAssertEqual(Double(final.headers["x-sightline-score"] ?? "") ?? -1, best.score, accuracy: 1e-5)
        let finalFrame = try XCTUnwrap(final.headers["x-sightline-frame"].flatMap { Int($0) }, "\(final.headers)")
        let bestView = try XCTUnwrap(detections(of: endedTrack, in: seen).first { $0.frame == finalFrame && $0.score == best.score },
                                     "the snapshot's frame \(finalFrame) holds the best detection (\(best))")
        let finalPicture = try decode(final.body)
        XCTAssertEqual(finalPicture.width, 768)
        XCTAssertEqual(finalPicture.height, 576)
        if let drawn = boxDrawn(bestView.box, paletteIndex: endedTrack, on: finalPicture) {
            XCTAssertLessThan(drawn.edge, 70, "the box's edges at \(bestView.box) in the track's colour")
            XCTAssertGreaterThan(drawn.inside, drawn.edge + 30, "edges \(drawn.edge), inside \(drawn.inside)")
        }
        let events = try get("/api/events?source=net&limit=200")
        let listed = try XCTUnwrap(JSONSerialization.jsonObject(with: events.body) as? [[String: Any]], events.text)
        XCTAssertTrue(listed.contains { $0["track_id"] as? Int == endedTrack && $0["snapshot"] as? String == endedPath }, events.text)

        // `kept` events after it, its snapshot is no longer kept; the latest event's is.
        let position = starts.firstIndex(of: endedTrack) ?? 0
        while starts.count < position + 1 + kept {
            guard let id = subscriber.until(timeout: 120, { $0["type"] as? String == "object_start" }).match?["track_id"] as? Int else { break }
            starts.append(id)
        }
        XCTAssertEqual(starts.count, position + 1 + kept, "\(kept) more events: \(starts)")
        let evicted = try waitFor(endedPath, status: 404, timeout: 20)
        XCTAssertEqual(evicted.status, 404, "the snapshot is no longer kept")
        XCTAssertTrue(evicted.text.contains("no longer kept"), evicted.text)
        if let last = starts.last {
            XCTAssertEqual(try waitFor("/events/net-\(last)/snapshot.jpg", status: 200, timeout: 20).status, 200, "the latest event's is")
        }
        let afterwards = try XCTUnwrap(JSONSerialization.jsonObject(with: try get("/api/events?source=net&limit=200").body) as? [[String: Any]])
        XCTAssertFalse(afterwards.contains { $0["track_id"] as? Int == endedTrack && $0["snapshot"] != nil }, "no address for an evicted snapshot")

        // Ids that name no kept event, or are no event id at all: 404 with a reason, and the server goes on.
        for id in ["net-999999", "nope-1", "net", "net-0", "net-x", "net-1x", "-3"] {
            let reply = try get("/events/\(id)/snapshot.jpg")
            XCTAssertEqual(reply.status, 404, id)
            XCTAssertFalse(reply.text.isEmpty, id)
        }
        // Still healthy: a waited-for 200, as one request could meet a moment a loaded machine fell `stale_seconds` behind.
        XCTAssertEqual(try waitFor("/healthz", status: 200, timeout: 120).status, 200)
        process.signal(SIGTERM)
        XCTAssertEqual(process.wait(timeout: 120), 0, process.stderr)
        _ = stream
    }

    func testStreamClientsBeyondTheLimitGet503AndDetectionGoesOn() throws {
        let (stream, url) = try daemon.serveStream()
        let process = try daemon.start(input: url, maxStreamClients: 10)
        let subscriber = try LineSubscriber(path: daemon.socketPath)
        XCTAssertNotNil(subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match, process.stderr)

        for path in ["/nope", "/sources/nope/latest.jpg", "/sources/nope/stream.mjpeg", "/sources/net/nope", "/api/nope"] {
            XCTAssertEqual(try get(path).status, 404, path)
        }
        // 100 clients at once: the first 10 are served pictures, every other one gets 503, none is left hanging.
        let clients = (0..<100).compactMap { _ in RawHTTPClient(port: daemon.httpPort, path: "/sources/net/stream.mjpeg") }
        XCTAssertEqual(clients.count, 100, "all 100 connected")
        let statuses = clients.map { $0.status(timeout: 120) }
        XCTAssertEqual(statuses.filter { $0 == 200 }.count, 10, "\(statuses)")
        XCTAssertEqual(statuses.filter { $0 == 503 }.count, 90, "\(statuses)")
        // Detection goes on while they are connected.
        let during = subscriber.until(timeout: 2) { _ in false }.seen.filter { $0["type"] as? String == "detections" }
        XCTAssertNotNil(during.isEmpty ? subscriber.until(timeout: 120) { $0["type"] as? String == "detections" }.match : during.first,
                        "records keep coming with 100 stream clients")
        let metrics = try PrometheusText.parse(try get("/metrics").text)
        XCTAssertEqual(metrics["sightline_http_stream_clients"], 10)
        clients.forEach { $0.close() }
        process.signal(SIGTERM)
        XCTAssertEqual(process.wait(timeout: 120), 0, process.stderr)
        _ = stream
    }
}

/// A daemon with its HTTP server on a free loopback port, fed by a live stream, and helpers to talk to it.
final class HTTPDaemonHarness {
    let binary = TestPaths.sightlineBinary
    let dir: URL
    let httpPort = freeLoopbackPort()

    init() throws { dir = try TestPaths.temporaryDirectory() }
    deinit { try? FileManager.default.removeItem(at: dir) }

    var socketPath: String { dir.appendingPathComponent("s.sock").path }
    var configPath: String { dir.appendingPathComponent("sightline.yaml").path }

    struct Failure: Error, CustomStringConvertible { let description: String }

    struct Reply {
        let status: Int
        let headers: [String: String]
        let body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// One GET with curl; status 0 if curl got no answer.
    func get(_ path: String, maxTime: Double = 20) throws -> Reply {
        let body = dir.appendingPathComponent("body-\(UUID().uuidString)"), head = dir.appendingPathComponent("head-\(UUID().uuidString)")
        defer {
            try? FileManager.default.removeItem(at: body)
            try? FileManager.default.removeItem(at: head)
        }
        let result = try runProcess("/usr/bin/env", ["curl", "-s", "-o", body.path, "-D", head.path, "-w", "%{http_code}",
                                                     "--max-time", "\(maxTime)", "http://127.0.0.1:\(httpPort)\(path)"])
        var headers: [String: String] = [:]
        for line in (try? String(contentsOf: head, encoding: .utf8))?.split(separator: "\r\n") ?? [] {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Reply(status: Int(result.stdout) ?? 0, headers: headers, body: (try? Data(contentsOf: body)) ?? Data())
    }

    /// Polls `path` until it answers `status` (or the time is up); returns the last reply.
    func waitFor(_ path: String, status: Int, timeout: TimeInterval) throws -> Reply {
        let deadline = Date().addingTimeInterval(timeout)
        var reply = try get(path, maxTime: 5)
        while reply.status != status && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.25)
            reply = try get(path, maxTime: 5)
        }
        return reply
    }

    /// An endless live stream of vtest.avi (10 fps) over HTTP, as a network camera would serve it.
    func serveStream() throws -> (BackgroundProcess, String) {
        guard let ffmpeg = ["/usr/bin/ffmpeg", "/usr/local/bin/ffmpeg"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Failure(description: "ffmpeg is missing: run scripts/setup.sh")
        }
        let url = "http://127.0.0.1:\(freeLoopbackPort())/cam.ts"
        let server = try BackgroundProcess(ffmpeg, ["-v", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", TestPaths.media("vtest.avi"),
                                                   "-c:v", "mpeg4", "-q:v", "3", "-f", "mpegts", "-listen", "1", url])
        Thread.sleep(forTimeInterval: 0.5)
        return (server, url)
    }

    func start(input: String, maxStreamClients: Int = 10, snapshots: Int = 50) throws -> BackgroundProcess {
        try """
        threshold: 0.5
        workers: 2
        heartbeat_seconds: 0
        socket: { path: \(socketPath), mode: "0600" }
        http: { listen: "127.0.0.1:\(httpPort)", preview_fps: 5, max_stream_clients: \(maxStreamClients), stale_seconds: 2, snapshots: \(snapshots) }
        sources:
          - { name: net, input: "\(input)", io_timeout: 120 }
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
        return try BackgroundProcess(binary, ["run", "--config", configPath])
    }
}

/// A GET over a plain socket, left open: for many concurrent stream clients without a process each.
final class RawHTTPClient {
    private var fd: Int32

    init?(port: UInt16, path: String) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard connected == 0, write(fd, request, request.count) == request.count else {
            close()
            return nil
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Foundation.close(fd) }
        fd = -1
    }

    /// The status code of the response, or 0 if none came within `timeout`.
    func status(timeout: TimeInterval) -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        var received: [UInt8] = []
        while !received.contains(UInt8(ascii: "\n")), Date() < deadline {
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 200) >= 0 else { return 0 }
            guard ready.revents != 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 512)
            let n = read(fd, &chunk, chunk.count)
            guard n > 0 else { break }
            received += chunk[0..<n]
        }
        let line = String(decoding: received.prefix { $0 != UInt8(ascii: "\r") }, as: UTF8.self).split(separator: " ")
        return line.count >= 2 ? Int(line[1]) ?? 0 : 0
    }
}

