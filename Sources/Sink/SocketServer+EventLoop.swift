import Foundation

extension SocketServer {
    /// The I/O thread's own state and work: it polls the wake pipe, the listener and every subscriber, accepts,
    /// moves each subscriber's queued lines into its send buffer and sends them. Made on that thread and never
    /// shared (so not Sendable); what other threads touch is in `server.shared`.
    final class EventLoop {
        let server: SocketServer
        let options: Options
        /// Replaced when the socket file was deleted and is made anew.
        var listener: Int32
        var listenerOpen = true
        var active: [Subscriber] = []
        var nextSubscriberID = 0
        var pollSet: [pollfd] = []
        var popped: [String] = []
        var input = [UInt8](repeating: 0, count: 4096)
        var nextFileCheck = ContinuousClock.now + SocketServer.fileCheckInterval
        var acceptPausedUntil: ContinuousClock.Instant?

        init(server: SocketServer, listener: Int32) {
            self.server = server
            self.options = server.options
            self.listener = listener
            popped.reserveCapacity(256)
        }

        func run() {
            while true {
                let now = ContinuousClock.now
                pollSet.removeAll(keepingCapacity: true)
                pollSet.append(pollfd(fd: server.wakeRead, events: Int16(POLLIN), revents: 0))
                var listenIndex = -1
                if listenerOpen, acceptPausedUntil.map({ now >= $0 }) ?? true {
                    acceptPausedUntil = nil
                    listenIndex = pollSet.count
                    pollSet.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
                }
                let base = pollSet.count
                for subscriber in active {
                    var events: Int16 = 0
                    if !subscriber.readClosed { events |= Int16(POLLIN) }
                    if subscriber.blocked { events |= Int16(POLLOUT) }
                    pollSet.append(pollfd(fd: subscriber.fd, events: events, revents: 0))
                }

                let (closing, checkFile) = server.shared.withLock { shared in
                    let requested = shared.fileCheckRequested
                    shared.fileCheckRequested = false
                    return (shared.closeDeadline, requested)
                }
                if closing == nil, checkFile || now >= nextFileCheck {
                    restoreSocketFileIfGone()
                    nextFileCheck = now + SocketServer.fileCheckInterval
                }

                let ready = poll(&pollSet, nfds_t(pollSet.count), timeoutMillis(now: now, closing: closing))
                if ready < 0, errno != EINTR {
                    // Nothing sensible to do but not spin.
                    usleep(10_000)
                }
                let woke = ContinuousClock.now

                if pollSet[0].revents != 0 {
                    drainWakePipe()
                    server.shared.withLock { $0.wakePending = false }
                }
                let closingNow = server.shared.withLock { $0.closeDeadline }

                // Subscriber events (indices match `active` as it was when the poll set was built).
                for (i, subscriber) in active.enumerated() {
                    let revents = Int32(pollSet[base + i].revents)
                    if revents & (POLLERR | POLLHUP | POLLNVAL) != 0 {
                        subscriber.dead = true
                        continue
                    }
                    if revents & POLLIN != 0 { drainInput(subscriber) }
                    if revents & POLLOUT != 0 { subscriber.blocked = false }
                }

                if closingNow != nil, listenerOpen {
                    Glibc.close(listener)
                    listenerOpen = false
                } else if listenIndex >= 0, pollSet[listenIndex].revents != 0 {
                    acceptAll(now: woke)
                }

                // A subscriber that lost lines gets its lag record next: the unsent lines already taken from its
                // queue are older than the ones it lost, so they give way too.
                for subscriber in active where subscriber.farewellDeadline == nil {
                    let id = subscriber.id
                    guard server.shared.withLock({ ($0.inboxes[id]?.dropped ?? 0) > 0 }) else { continue }
                    let trimmed = subscriber.trimUnsentLines()
                    if trimmed > 0 {
                        server.shared.withLock { $0.inboxes[id]?.dropped += trimmed }
                    }
                }

                for subscriber in active where !subscriber.dead {
                    if !subscriber.blocked { flush(subscriber) }
                    if subscriber.dead { continue }
                    if let deadline = subscriber.farewellDeadline {
                        if subscriber.out.isEmpty || woke >= deadline { subscriber.dead = true }
                    } else if let since = subscriber.waitingSince, woke - since >= options.stuckAfter {
                        // Reading, if slowly: what it has not read yet of what the kernel took went down.
                        let unread = Self.unreadBytes(subscriber.fd)
                        if unread < subscriber.unread {
                            subscriber.waitingSince = woke
                        } else {
                            bidFarewell(subscriber, now: woke)
                        }
                        subscriber.unread = unread
                    }
                }
                removeDead()

                if let closingNow {
                    let idle = active.allSatisfy { $0.waitingSince == nil }
                    if idle || ContinuousClock.now >= closingNow {
                        for subscriber in active { Glibc.close(subscriber.fd) }
                        active.removeAll()
                        server.shared.withLock { $0.inboxes.removeAll() }
                        break
                    }
                }
            }
            if listenerOpen {
                Glibc.close(listener)
                listenerOpen = false
            }
            server.finished.signal()
        }

        /// Until the nearest stuck deadline, farewell deadline, flush deadline or accept retry; -1 when none.
        private func timeoutMillis(now: ContinuousClock.Instant, closing: ContinuousClock.Instant?) -> Int32 {
            var deadline = closing
            if server.ownedPath != nil { deadline = min(deadline ?? nextFileCheck, nextFileCheck) }
            if let paused = acceptPausedUntil { deadline = min(deadline ?? paused, paused) }
            for subscriber in active {
                if let due = subscriber.farewellDeadline ?? subscriber.waitingSince.map({ $0 + options.stuckAfter }) {
                    deadline = min(deadline ?? due, due)
                }
            }
            guard let deadline else { return -1 }
            let wait = deadline - now
            if wait <= .zero { return 0 }
            let (seconds, attoseconds) = wait.components
            let millis = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
            return Int32(clamping: millis)
        }

        /// Binds a new listener at the socket path if the file this server made is gone, unless the path now belongs
        /// to something else (a live socket of another process, a file that is not a socket).
        private func restoreSocketFileIfGone() {
            guard let ownedPath = server.ownedPath, listenerOpen, let ownedFile = server.shared.withLock({ $0.ownedFile }) else { return }
            var info = stat()
            if lstat(ownedPath, &info) == 0, UInt64(info.st_dev) == ownedFile.dev, UInt64(info.st_ino) == ownedFile.ino { return }
            guard let bound = try? SocketServer.bindListener(path: ownedPath, options: options) else { return }
            Glibc.close(listener)
            listener = bound.fd
            server.shared.withLock { $0.ownedFile = (bound.dev, bound.ino) }
        }

        private func drainWakePipe() {
            var sink = [UInt8](repeating: 0, count: 64)
            while true {
                let n = read(server.wakeRead, &sink, sink.count)
                if n > 0 { continue }
                if n < 0, errno == EINTR { continue }
                return
            }
        }

        private func drainInput(_ subscriber: Subscriber) {
            for _ in 0..<16 {
                let n = input.withUnsafeMutableBytes { recv(subscriber.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 {
                    readRequests(input[0..<n], from: subscriber)
                    continue
                }
                if n == 0 {
                    subscriber.readClosed = true
                    return
                }
                switch errno {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK: return
                default:
                    subscriber.dead = true
                    return
                }
            }
        }

        /// Splits a subscriber's input into request lines and answers each: `subscribed` (and its filter from then on)
        /// or an `error` record, queued in order with the records it is sent.
        private func readRequests(_ bytes: ArraySlice<UInt8>, from subscriber: Subscriber) {
            var rest = bytes
            while !rest.isEmpty {
                let newline = rest.firstIndex(of: 0x0A)
                let part = rest[..<(newline ?? rest.endIndex)]
                rest = newline.map { rest[($0 + 1)...] } ?? []
                if !subscriber.skippingRequest { subscriber.request += part }
                if subscriber.request.count > Subscription.maxRequestBytes {
                    subscriber.request = []
                    if !subscriber.skippingRequest {
                        refuse(subscriber, "request longer than \(Subscription.maxRequestBytes) bytes")
                    }
                    subscriber.skippingRequest = newline == nil
                    continue
                }
                guard newline != nil else { return }
                let line = subscriber.request
                subscriber.request = []
                if subscriber.skippingRequest {
                    subscriber.skippingRequest = false
                    continue
                }
                guard line.contains(where: { ![0x20, 0x09, 0x0D].contains($0) }) else { continue }
                switch Subscription.parse(line) {
                case .success(let subscription):
                    answer(subscriber, Array(subscription.subscribedLine().utf8), subscription: subscription)
                case .failure(let error):
                    refuse(subscriber, error.description)
                }
            }
        }

        private func refuse(_ subscriber: Subscriber, _ detail: String) {
            subscriber.invalidRequests += 1
            guard subscriber.invalidRequests <= Subscription.maxErrors else { return }
            answer(subscriber, Self.errorRecord(reason: "invalid request") { $0.field("detail", detail) }, subscription: nil)
        }

        /// Queues `reply` for the subscriber behind what it already has, and applies `subscription` to what follows.
        /// It is flushed with the subscriber's other lines later in this pass of the loop.
        private func answer(_ subscriber: Subscriber, _ reply: [UInt8], subscription: Subscription?) {
            let line = String(decoding: reply, as: UTF8.self)
            server.shared.withLock { shared in
                guard let index = shared.inboxes.index(forKey: subscriber.id) else { return }
                if let subscription { shared.inboxes.values[index].subscription = subscription }
                if shared.inboxes.values[index].queue.push(line) { shared.inboxes.values[index].dropped += 1 }
            }
        }

        private func acceptAll(now: ContinuousClock.Instant) {
            while true {
                let fd = accept(listener, nil, nil)
                if fd < 0 {
                    switch errno {
                    case EINTR, ECONNABORTED: continue
                    case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                        // The connection stays in the backlog; try again shortly rather than spin.
                        acceptPausedUntil = now + .milliseconds(100)
                        return
                    default: return
                    }
                }
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                SocketServer.setNonBlocking(fd)
                guard active.count < server.subscriberLimit else {
                    // Counted before the client can see its end, so whoever saw the refusal sees it counted.
                    server.shared.withLock { $0.refusedCount += 1 }
                    // A fresh socket's buffer is empty: the record goes out whole, or not at all.
                    let refusal = Self.errorRecord(reason: "too many subscribers", extra: { $0.field("limit", self.server.subscriberLimit) })
                    _ = refusal.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                    Glibc.close(fd)
                    continue
                }
                var sendBuffer = SocketServer.kernelSendBuffer
                setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sendBuffer, socklen_t(MemoryLayout<Int32>.size))
                let subscriber = Subscriber(fd: fd, id: nextSubscriberID)
                nextSubscriberID += 1
                // Registered before its hello is made, so it misses no line broadcast after the hello:
                // broadcasts only queue, and the hello goes out ahead of the queue.
                server.shared.withLock { $0.inboxes[subscriber.id] = Inbox(limit: options.queueLimit) }
                var greeting = server.hello()
                if greeting.utf8.last != 0x0A { greeting += "\n" }
                subscriber.out.reserveCapacity(SocketServer.chunkBytes + 4096)
                subscriber.out.append(contentsOf: greeting.utf8)
                active.append(subscriber)
            }
        }

        /// Sends as much as the socket takes; refills from the queue between chunks.
        private func flush(_ subscriber: Subscriber) {
            while true {
                if subscriber.sent == subscriber.out.count {
                    subscriber.out.removeAll(keepingCapacity: true)
                    subscriber.sent = 0
                    subscriber.greeted = true
                    subscriber.lagAtStart = nil
                    if subscriber.farewellDeadline != nil { return }  // its final record is out
                    refill(subscriber)
                    if subscriber.out.isEmpty {
                        subscriber.waitingSince = nil
                        return
                    }
                    if subscriber.waitingSince == nil { subscriber.waitingSince = .now }
                } else if subscriber.waitingSince == nil {
                    subscriber.waitingSince = .now  // a new subscriber's hello
                }
                let n = subscriber.out.withUnsafeBytes { bytes in
                    send(subscriber.fd, bytes.baseAddress! + subscriber.sent, bytes.count - subscriber.sent,
                         Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
                }
                if n > 0 {
                    subscriber.sent += n
                    subscriber.waitingSince = .now
                    subscriber.unread = Self.unreadBytes(subscriber.fd)
                    continue
                }
                switch errno {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK:
                    subscriber.blocked = true
                    return
                default:  // EPIPE, ECONNRESET, ...: the subscriber is gone.
                    subscriber.dead = true
                    return
                }
            }
        }

        /// Moves queued lines (up to about `chunkBytes`) into the send buffer, preceded by a lag
        /// record if lines were dropped before them.
        private func refill(_ subscriber: Subscriber) {
            let dropped = server.shared.withLock { shared in
                shared.inboxes[subscriber.id]?.take(upTo: SocketServer.chunkBytes, into: &popped)
            } ?? 0
            if dropped > 0 {
                var lag = JSONLineWriter()
                lag.field("type", "lag")
                lag.field("dropped", dropped)
                lag.field("time", RFC3339.format(Date()))
                subscriber.out.append(contentsOf: lag.finish().utf8)
                subscriber.out.append(0x0A)
                subscriber.lagAtStart = (dropped, subscriber.out.count)
            }
            for line in popped { subscriber.out.append(contentsOf: line.utf8) }
            popped.removeAll(keepingCapacity: true)
        }

        /// Stops serving a subscriber that reads nothing: it leaves the broadcast list, loses what it has not been sent
        /// (after the line in progress) and gets a final `error` record, if it takes it within `farewellTimeout`.
        private func bidFarewell(_ subscriber: Subscriber, now: ContinuousClock.Instant) {
            let lost = server.shared.withLock { shared in
                shared.stuckCount += 1
                guard let inbox = shared.inboxes.removeValue(forKey: subscriber.id) else { return 0 }
                return inbox.dropped + inbox.queue.count
            }
            let trimmed = subscriber.trimUnsentLines()
            subscriber.out.append(contentsOf: Self.errorRecord(reason: "too slow") {
                $0.field("dropped", lost + trimmed)
                $0.field("detail", "read nothing for \(self.options.stuckAfter) while records waited; disconnected")
            })
            subscriber.farewellDeadline = now + options.farewellTimeout
            subscriber.waitingSince = nil
        }

        /// `{"type":"error","reason":...,"time":...}` and a newline.
        private static func errorRecord(reason: String, extra: (inout JSONLineWriter) -> Void = { _ in }) -> [UInt8] {
            var record = JSONLineWriter()
            record.field("type", "error")
            record.field("reason", reason)
            extra(&record)
            record.field("time", RFC3339.format(Date()))
            return Array((record.finish() + "\n").utf8)
        }

        /// Bytes sent to `fd` that its reader has not read yet (SIOCOUTQ).
        private static func unreadBytes(_ fd: Int32) -> Int {
            var unread: Int32 = 0
            return ioctl(fd, UInt(TIOCOUTQ), &unread) == 0 ? Int(unread) : 0
        }

        private func removeDead() {
            let dead = active.filter(\.dead)
            guard !dead.isEmpty else { return }
            for subscriber in dead { Glibc.close(subscriber.fd) }
            active.removeAll { $0.dead }
            // Those being let go already left the broadcast list (bidFarewell).
            server.shared.withLock { shared in
                for subscriber in dead { shared.inboxes[subscriber.id] = nil }
            }
        }
    }
}
