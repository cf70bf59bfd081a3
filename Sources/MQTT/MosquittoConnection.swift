import CMosquitto
import Glibc

/// One libmosquitto client, driven from a single thread (the publisher's) through libmosquitto's external-loop
/// API: the caller polls `socket`, then calls `read()`/`write()`/`maintain()`. libmosquitto runs its callbacks
/// inside those calls, on the same thread, and they only append to `events`.
final class MosquittoConnection {
    enum Event: Equatable {
        case connected
        /// The broker answered CONNECT with a refusal (bad credentials, not authorised ...).
        case refused(String)
        case disconnected(String)
        /// The message with this id is through: written (QoS 0) or acknowledged (QoS 1 and 2).
        case delivered(Int32)
    }

    private static let libraryReady: Bool = { mosquitto_lib_init() == MOSQ_ERR_SUCCESS.rawValue }()

    private let handle: OpaquePointer
    let settings: MQTTSettings
    var events: [Event] = []
    /// libmosquitto's last error-level log line (e.g. OpenSSL's reason for a failed handshake), added to failures.
    private var lastLibraryError: String?

    /// Creates the client with the Last Will set; connecting is `connect()`.
    init(settings: MQTTSettings) throws(MQTTError) {
        guard Self.libraryReady, let handle = mosquitto_new(settings.clientID, true, nil) else {
            throw MQTTError("cannot create an MQTT client (libmosquitto failed to initialise)")
        }
        self.handle = handle
        self.settings = settings
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        mosquitto_connect_callback_set(handle) { _, object, rc in
            guard let object else { return }
            let connection = Unmanaged<MosquittoConnection>.fromOpaque(object).takeUnretainedValue()
            connection.events.append(rc == 0 ? .connected : .refused(String(cString: mosquitto_connack_string(rc))))
        }
        mosquitto_disconnect_callback_set(handle) { _, object, rc in
            guard let object else { return }
            let connection = Unmanaged<MosquittoConnection>.fromOpaque(object).takeUnretainedValue()
            connection.events.append(.disconnected(rc == 0 ? "disconnected" : connection.explained(rc)))
        }
        mosquitto_publish_callback_set(handle) { _, object, mid in
            guard let object else { return }
            Unmanaged<MosquittoConnection>.fromOpaque(object).takeUnretainedValue().events.append(.delivered(mid))
        }
        mosquitto_log_callback_set(handle) { _, object, level, text in
            guard let object, let text, level == MOSQ_LOG_ERR else { return }
            Unmanaged<MosquittoConnection>.fromOpaque(object).takeUnretainedValue().lastLibraryError = String(cString: text)
        }
        let available = Topics(prefix: settings.topicPrefix).available
        try check(mosquitto_will_set(handle, available, 7, "offline", 1, true), "setting the Last Will on \(available)")
        if let username = settings.username {
            try check(mosquitto_username_pw_set(handle, username, settings.password), "setting the MQTT username")
        }
        if let tls = settings.tls {
            try check(mosquitto_tls_set(handle, tls.caFile, nil, tls.certFile, tls.keyFile, nil),
                      "setting up TLS (ca_file \(tls.caFile)\(tls.certFile.map { ", cert_file \($0)" } ?? ""))")
        }
        _ = mosquitto_int_option(handle, MOSQ_OPT_TCP_NODELAY, 1)
    }

    deinit { mosquitto_destroy(handle) }

    /// Connects (TCP and TLS) and sends CONNECT; `.connected` or `.refused` follows when the broker answers.
    func connect() throws(MQTTError) {
        try check(mosquitto_connect(handle, settings.host, Int32(settings.port), Int32(settings.keepaliveSeconds)),
                  "connecting to \(settings.host):\(settings.port)")
    }

    /// The socket to poll, or -1 while there is none.
    var socket: Int32 { mosquitto_socket(handle) }
    var wantsWrite: Bool { mosquitto_want_write(handle) }

    /// Each returns libmosquitto's error text once the connection has failed, nil while it is fine.
    func read() -> String? { failure(mosquitto_loop_read(handle, 1)) }
    func write() -> String? { failure(mosquitto_loop_write(handle, 1)) }
    /// Keepalive pings and retries; call at least once a second.
    func maintain() -> String? { failure(mosquitto_loop_misc(handle)) }

    /// Hands a message to libmosquitto and returns its id for `.delivered`.
    func publish(_ message: Outbound) -> Result<Int32, MQTTError> {
        var mid: Int32 = 0
        let bytes = Array(message.payload.utf8)
        let rc = mosquitto_publish(handle, &mid, message.topic, Int32(bytes.count), bytes, message.qos, message.retain)
        guard rc == MOSQ_ERR_SUCCESS.rawValue else {
            return .failure(MQTTError("publishing to \(message.topic): \(String(cString: mosquitto_strerror(rc)))"))
        }
        return .success(mid)
    }

    func disconnect() { _ = mosquitto_disconnect(handle) }

    private func failure(_ rc: Int32) -> String? {
        rc == MOSQ_ERR_SUCCESS.rawValue ? nil : explained(rc)
    }

    private func check(_ rc: Int32, _ what: String) throws(MQTTError) {
        guard rc != MOSQ_ERR_SUCCESS.rawValue else { return }
        throw MQTTError("\(what): \(explained(rc))")
    }

    private func explained(_ rc: Int32) -> String {
        let reason = rc == MOSQ_ERR_ERRNO.rawValue ? String(cString: strerror(errno)) : String(cString: mosquitto_strerror(rc))
        defer { lastLibraryError = nil }
        return lastLibraryError.map { "\(reason) (\($0))" } ?? reason
    }
}

public struct MQTTError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
