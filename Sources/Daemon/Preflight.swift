import Detector
import Foundation
import Sink
import Values

/// What `check` and `run` verify beyond the file itself: that the model and labels load, that every label in
/// `thresholds` is one the model knows, that the socket's group exists and that the sockets can be created.
/// Problems carry the line of the key that named the thing, so `check` reports them as it reports the file's own mistakes.
public struct Preflight {
    /// The loaded model, when it loads.
    public private(set) var model: Model?
    public private(set) var problems: [ConfigError.Problem] = []
    /// Things worth saying that are not errors.
    public private(set) var notes: [String] = []

    /// - Parameters:
    ///   - origin: the config file, as problems name it.
    ///   - defaultModel: the model used when the config names none.
    ///   - checkSocket: false when systemd passes the listening socket (the configured path is then unused).
    ///   - checkHTTPSocket: false when systemd passes the HTTP socket (`http.listen` is then unused).
    ///   - runtimeDirectoryMayBeAbsent: true for `check`: the unit's runtime directory only exists while the service runs.
    ///   - running: the model a reload runs with, when the config names the same model, labels and precision: it is
    ///     not loaded again.
    public init(_ config: DaemonConfig, origin: String, defaultModel: String, checkSocket: Bool = true,
                checkHTTPSocket: Bool = true, runtimeDirectoryMayBeAbsent: Bool = false, running: Model? = nil) {
        func add(_ keyPath: String, _ message: String) {
            problems.append(ConfigError.Problem(origin: origin, line: config.lines[keyPath], keyPath: keyPath, message: message))
        }
        /// `socketFileProblem`, except that for `check` a socket in the unit's runtime directory, which systemd makes
        /// when the service starts, is only noted while that directory is absent.
        func socketProblem(_ path: String, byHand hint: String) -> String? {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            guard runtimeDirectoryMayBeAbsent && directory == DaemonConfig.Socket.runtimeDirectory && FileType(path: directory) == nil else {
                return Self.socketFileProblem(path)
            }
            notes.append("\(directory) does not exist yet: systemd creates it when the service starts (to run this config by hand, \(hint))")
            return nil
        }

        var labelsLoad = true
        if let running {
            model = running
        } else {
            let loaded = Self.loadModel(config, defaultModel: defaultModel)
            model = loaded.model
            labelsLoad = loaded.labelsLoad
            for (keyPath, message) in loaded.problems { add(keyPath, message) }
        }
        if let model, labelsLoad {
            problems += Self.unknownLabels(in: config, origin: origin, known: model.labelNames)
        }

        if checkHTTPSocket, case .unix(let path)? = config.http?.listen {
            if checkSocket && URL(fileURLWithPath: path).standardizedFileURL == URL(fileURLWithPath: config.socket.path).standardizedFileURL {
                add("http.listen", "cannot listen on unix:\(path): it is socket.path, the subscribers' socket: give HTTP its own")
            } else if let problem = socketProblem(path, byHand: "give `http.listen` another directory") {
                add("http.listen", "cannot listen on unix:\(path): \(problem)")
            }
        }
        guard checkSocket else { return }
        if let group = config.socket.group {
            do {
                _ = try SocketServer.resolveGroup(group)
            } catch {
                add("socket.group", "\(error)")
            }
        }
        let keyPath = config.lines["socket.path"] != nil ? "socket.path" : "socket"
        if let problem = socketProblem(config.socket.path, byHand: "give `sightline run --socket PATH`") {
            add(keyPath, "cannot create \(config.socket.path): \(problem)")
        }
    }

    /// Loads the labels and the model the config names, as `run` will; problems as key path and message.
    private static func loadModel(_ config: DaemonConfig, defaultModel: String)
        -> (model: Model?, labelsLoad: Bool, problems: [(keyPath: String, message: String)]) {
        var problems: [(keyPath: String, message: String)] = []
        var labelsLoad = true
        if let labels = config.labels {
            do {
                _ = try Labels.load(path: labels)
            } catch {
                problems.append(("labels", "\(error)"))
                labelsLoad = false
            }
        }
        let modelPath = config.model ?? defaultModel
        do {
            let model = try Model(path: modelPath, labelsPath: labelsLoad ? config.labels : nil, precision: config.precision)
            return (model, labelsLoad, problems)
        } catch {
            if config.model == nil, case .unreadable(_, "no such file") = error {
                problems.append(("model", "the bundled model is not installed at \(modelPath): name one with `model:` (or $SIGHTLINE_MODEL)"))
            } else {
                problems.append(("model", "\(error)"))
            }
            return (nil, labelsLoad, problems)
        }
    }

    /// Why a socket cannot be created at `path` as the file system stands, or nil: its directory must exist, and
    /// the path must be free or an old socket (which the daemon replaces unless someone still listens on it).
    /// A path whose text is wrong (`UnixSocketPath.problem`) was refused with the rest of the file.
    static func socketFileProblem(_ path: String) -> String? {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        switch FileType(path: directory) {
        case nil: return "the directory \(directory) does not exist"
        case .directory?: break
        case let type?: return "\(directory) is not a directory (it is \(type))"
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFSOCK: return nil
        case S_IFLNK: return "the path exists and is a symbolic link, not a socket"
        default: return "the path exists and is \(FileType(path: path) ?? .other), not a socket"
        }
    }

    /// Labels in `thresholds` (top-level and per source) that are not among the model's `known` labels:
    /// a typo such as `persn` would otherwise never match anything.
    public static func unknownLabels(in config: DaemonConfig, origin: String, known: [String]) -> [ConfigError.Problem] {
        var problems: [ConfigError.Problem] = []
        let check = { (path: String, thresholds: [String: Float]) in
            for label in thresholds.keys.sorted() where !known.contains(label) {
                var message = "unknown label \"\(label)\""
                if let guess = ConfigReader.closest(to: label, in: known) { message += " (did you mean \"\(guess)\"?)" }
                message += known.count <= 12 ? "; the model's labels: \(known.joined(separator: ", "))"
                                             : "; the model has \(known.count) labels (the `hello` record lists them)"
                problems.append(ConfigError.Problem(origin: origin, line: config.lines["\(path).\(label)"],
                                                    keyPath: "\(path).\(label)", message: message))
            }
        }
        check("thresholds", config.thresholds.perLabel)
        for (index, source) in config.sources.enumerated() { check("sources[\(index)].thresholds", source.thresholds.perLabel) }
        return problems
    }
}
